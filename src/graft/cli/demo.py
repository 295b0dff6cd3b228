"""`graft demo [--modality text]`: the offline end-to-end demos (digits -> EfficientNet-Lite0, reviews -> MiniLM)."""

from __future__ import annotations

from pathlib import Path

import typer

from graft.monitoring.console import make_console


def demo_command(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory (default runs/demo-TIME).", show_default=False
    ),
    epochs: int | None = typer.Option(None, "--epochs", "-e", help="Epochs (default 5).", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain per-epoch lines, no progress bars."),
    modality: str | None = typer.Option(
        None,
        "--modality",
        help="image: digits + EfficientNet-Lite0; text: drug reviews + MiniLM (default image).",
        show_default=False,
    ),
    task: str | None = typer.Option(None, "--task", hidden=True),  # before tasks existed: --task text
) -> None:
    """Fine-tune ImageNet EfficientNet-Lite0 on 1797 handwritten digits (or, with --modality text, MiniLM on
    drug reviews), fully offline, in a few minutes on 2 CPU cores."""
    from graft.errors import GraftError

    if task is not None:
        if modality is not None:
            raise GraftError(f"--task {task} is the old spelling of --modality {task}; give one of them")
        make_console(stderr=True).print(
            f"[yellow]warning[/yellow] graft demo --task {task} is now --modality {task}", highlight=False
        )
        modality = task
    modality = modality or "image"
    settings = {"quiet": True} if quiet else {}
    if modality == "text":
        from graft.demos.texts import run_text_demo

        run_text_demo(out, epochs, make_console(), **settings)
        return
    if modality != "image":
        raise GraftError(f"--modality must be image or text, got {modality!r}")
    from graft.demos.images import run_demo

    run_demo(out, epochs, make_console(), **settings)
