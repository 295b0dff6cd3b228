"""`graft predict BUNDLE_OR_RUN INPUT...`: labels with probabilities for images or folders of images."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from graft.monitoring.console import make_console


def predict_command(
    bundle: Path = typer.Argument(
        ..., help="A bundle folder (runs/NAME/model) or a run directory (runs/NAME).", show_default=False
    ),
    inputs: list[str] = typer.Argument(
        ..., help="Image files and/or folders (searched recursively).", show_default=False
    ),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="How many labels to show per input."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (a list of {input, label, score, top_k}) for machines."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward pass."),
) -> None:
    """Predict labels for images with a trained bundle."""
    from graft.inference import Predictor, expand_inputs

    predictor = Predictor.from_path(bundle, device=device)
    predictions = predictor.predict(expand_inputs(inputs), top_k=top_k, batch_size=batch_size)
    if as_json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return
    table = Table("input", "label", "probability", *(["runners-up"] if top_k > 1 else []))
    for p in predictions:
        others = ", ".join(f"{label} {score:.1%}" for label, score in p.top_k[1:])
        table.add_row(p.input, p.label, f"{p.score:.1%}", *([others] if top_k > 1 else []))
    make_console().print(table)
