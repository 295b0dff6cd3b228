"""`graft predict BUNDLE_OR_RUN INPUT...`: labels with probabilities for images (files or folders) or,
with a text bundle, for texts given as arguments or one per line in --file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from graft.errors import GraftError
from graft.files import json_ready
from graft.monitoring.console import make_console


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file."""
    if not path.is_file():
        raise GraftError(f"--file {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise GraftError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def predict_command(
    bundle: Path = typer.Argument(
        ..., help="A bundle folder (runs/NAME/model) or a run directory (runs/NAME).", show_default=False
    ),
    inputs: list[str] = typer.Argument(
        None,
        help="Image files and/or folders (searched recursively); for a text model, texts.",
        show_default=False,
    ),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Text model: a UTF-8 file with one text per line.", show_default=False
    ),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="How many labels to show per input."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (a list of {input, label, score, top_k}) for machines."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward pass."),
    backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch, or onnx: onnxruntime on the model.onnx that `graft export RUN "
        "--format onnx` wrote (no torch import).",
    ),
) -> None:
    """Predict labels for images (or texts) with a trained bundle."""
    from graft.predict.common import expand_inputs
    from graft.predict.load import BACKENDS, load_predictor

    if backend not in BACKENDS:
        raise GraftError(f"unknown --backend {backend!r}; choose {' or '.join(BACKENDS)}")
    predictor = load_predictor(bundle, backend=backend, device=device)  # onnx: no torch import
    if predictor.task == "text":
        items = list(inputs or []) + (read_lines(file) if file is not None else [])
        if not items:
            raise GraftError("no texts given: pass them as arguments or one per line with --file FILE")
    else:
        if file is not None:
            raise GraftError(
                f"--file is for text models; {bundle} is an image model: pass image files or folders"
            )
        if not inputs:
            raise GraftError("no images given: pass image files or folders")
        items = expand_inputs(inputs)
    predictions = predictor.predict(items, top_k=top_k, batch_size=batch_size)
    if as_json:
        print(json.dumps(json_ready([p.to_dict() for p in predictions]), indent=2))
        return
    table = Table("input", "label", "probability", *(["runners-up"] if top_k > 1 else []))
    for p in predictions:
        others = ", ".join(f"{label} {score:.1%}" for label, score in p.top_k[1:])
        table.add_row(p.input, p.label, f"{p.score:.1%}", *([others] if top_k > 1 else []))
    make_console().print(table)
