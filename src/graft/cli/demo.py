"""`graft demo`: the offline end-to-end demo (digits -> ImageNet EfficientNet-Lite0 -> bundle)."""

from __future__ import annotations

from pathlib import Path

import typer

from graft.monitoring.console import make_console


def demo_command(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory (default runs/demo-TIME).", show_default=False
    ),
    epochs: int | None = typer.Option(None, "--epochs", "-e", help="Epochs (default 5).", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain per-epoch lines, no live progress bar."),
) -> None:
    """Fine-tune ImageNet EfficientNet-Lite0 on 1797 handwritten digits, fully offline (about a minute on 2 CPU cores)."""
    from graft.demo import run_demo

    run_demo(out, epochs, make_console(), **({"quiet": True} if quiet else {}))
