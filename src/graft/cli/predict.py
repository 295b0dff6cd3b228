"""`graft predict BUNDLE_OR_RUN INPUT...`: predictions for images (files or folders) or, with a text
bundle, for texts given as arguments or one per line in --file. Per input, by the bundle's task:

    single-label   the class and its probability (--top-k: the runners-up too)
    multi-label    the labels above their thresholds with their probabilities, e.g. `sea 0.91, sunset 0.74`,
                   or `(none above threshold)` with the most probable label (--top-k K: K-1 labels below)
    regression     the number, in the target's units

--json prints the same: single-label {input, label, score, top_k}, the others {input, value, scores}.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

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
        False,
        "--json",
        help="Print JSON for machines: a list of {input, label, score, top_k} (single-label) or of {input, "
        "value, scores} (multi-label: the labels above threshold and every label's probability; "
        "regression: the number).",
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
    if top_k > 1 and predictor.task == "regression":
        raise GraftError(f"--top-k is for classifiers; {bundle} is a regression model (it predicts a number)")
    if predictor.modality == "text":
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
    make_console().print(TABLES[predictor.task](predictions, top_k))


def single_label_table(predictions: list[Any], top_k: int) -> Table:
    table = Table("input", "label", "probability", *(["runners-up"] if top_k > 1 else []))
    for p in predictions:
        others = ", ".join(f"{label} {score:.1%}" for label, score in p.top_k[1:])
        table.add_row(p.input, p.label, f"{p.score:.1%}", *([others] if top_k > 1 else []))
    return table


def multi_label_table(predictions: list[Any], top_k: int) -> Table:
    table = Table("input", "labels above threshold", *(["below threshold"] if top_k > 1 else []))
    for p in predictions:
        ranked = p.ranked()
        above = ", ".join(f"{label} {p.scores[label]:.2f}" for label in p.labels)
        if not above:
            above = f"(none above threshold; top: {ranked[0][0]} {ranked[0][1]:.2f})" if ranked else "(none)"
        below = [(label, score) for label, score in ranked if label not in p.labels][: top_k - 1]
        table.add_row(
            p.input, above, *([", ".join(f"{label} {s:.2f}" for label, s in below)] if top_k > 1 else [])
        )
    return table


def regression_table(predictions: list[Any], top_k: int) -> Table:
    table = Table("input", predictions[0].target if predictions else "value")
    for p in predictions:
        table.add_row(p.input, format_number(p.value))
    return table


TABLES = {
    "single-label": single_label_table,
    "multi-label": multi_label_table,
    "regression": regression_table,
}


def format_number(value: float) -> str:
    """Four significant digits without an exponent: 23.41, 0.001234, 250000."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.{max(0, 3 - math.floor(math.log10(abs(value))))}f}"
