"""`graft demo [--task text]`: the offline end-to-end demos (digits -> EfficientNet-Lite0, reviews -> MiniLM)."""

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
    task: str = typer.Option(
        "image", "--task", help="image: digits + EfficientNet-Lite0; text: drug reviews + MiniLM."
    ),
) -> None:
    """Fine-tune ImageNet EfficientNet-Lite0 on 1797 handwritten digits (or, with --task text, MiniLM on drug
    reviews), fully offline, in a few minutes on 2 CPU cores."""
    settings = {"quiet": True} if quiet else {}
    if task == "text":
        from graft.demos.texts import run_text_demo

        run_text_demo(out, epochs, make_console(), **settings)
        return
    if task != "image":
        from graft.errors import GraftError

        raise GraftError(f"--task must be image or text, got {task!r}")
    from graft.demos.images import run_demo

    run_demo(out, epochs, make_console(), **settings)
