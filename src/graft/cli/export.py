"""`graft export RUN_OR_BUNDLE --format onnx|pt2|torchscript|safetensors`: a verified deployable file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from graft.errors import GraftError, did_you_mean
from graft.monitoring.console import make_console
from graft.runs.locate import locate

# = export.formats.FORMATS, which imports torch; checked here first so a typo answers at once (a test
# keeps the two equal).
FORMAT_NAMES = ("onnx", "pt2", "torchscript", "safetensors")


def export_command(
    target: Path = typer.Argument(
        ..., help="A run directory (runs/NAME) or a bundle folder (runs/NAME/model).", show_default=False
    ),
    fmt: str = typer.Option(..., "--format", "-f", help=f"{', '.join(FORMAT_NAMES)}.", show_default=False),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (default: inside the bundle, model.onnx / model.pt2 / ...)."
    ),
) -> None:
    """Export the bundle's model and check it against PyTorch before keeping it."""
    fmt = fmt.lower()
    if fmt not in FORMAT_NAMES:
        raise GraftError(
            f"unknown export format {fmt!r}{did_you_mean(fmt, FORMAT_NAMES)}; choose one of {', '.join(FORMAT_NAMES)}"
        )
    located = locate(target)  # a missing run or bundle, also before the torch import
    from graft.exporting.formats import export

    console = make_console()
    result = export(target, fmt, out)
    size = result.path.stat().st_size / 1e6
    console.print(
        f"[bold]export[/bold] {result.path} ({fmt}, {size:.1f} MB, {result.seconds:.1f}s)", highlight=False
    )
    console.print(f"[bold]verify[/bold] {result.check.summary()}", highlight=False)
    console.print(
        f"[bold]meta[/bold]   {result.sidecar}: input, preprocessing, classes, task", highlight=False
    )
    task = (located.meta.get("task_spec") or {}).get("name", "single-label")
    if task != "single-label":  # what the raw outputs are: a plain softmax over them would be wrong
        meaning = json.loads(result.sidecar.read_text())["output"]["meaning"]
        console.print(f"[bold]output[/bold] {meaning}", highlight=False)
    if fmt == "torchscript":
        console.print("[yellow]note[/yellow]   torch.jit is deprecated since PyTorch 2.14; --format pt2 is its "
                      "successor (torch.export), onnx runs without torch", highlight=False)  # fmt: skip
    if fmt == "onnx":
        example = '"SOME TEXT"' if located.meta.get("task") == "text-classification" else "IMAGE"
        gives = {
            "multi-label": "   (the labels above their thresholds)",
            "regression": "   (the number)",
        }.get(task, "")
        console.print(
            f"[bold]next[/bold]   graft predict {target} {example} --backend onnx{gives}", highlight=False
        )
