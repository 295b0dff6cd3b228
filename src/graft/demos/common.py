"""The skeleton both offline demos share: build the data once beside the run folder, train through the
public API with the demo's settings, and print the result with what to try next.

A demo is data: its name, how to write its data folder, one line saying what the data is, its settings
and its next steps (demos/images.py, demos/texts.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from graft.api import train
from graft.files import replace_folder, staging_folder
from graft.monitoring.console import make_console, plural
from graft.workflow.run_dir import claim_run_dir
from graft.workflow.train import Run


@dataclass(frozen=True)
class Demo:
    name: str  # the run folder: runs/<name>-TIME
    data_folder: str  # beside the run folder, built once and reused by later demos
    write_data: Callable[[Path], None]  # fills the (staging) folder it is given
    about: Callable[[Path], str]  # what the data is, given where it lies
    settings: dict[str, Any]
    next_steps: Callable[
        [Run, Path], list[str]
    ]  # commands to try on the finished run (runs/folder.py's paths)


def build_once(root: Path, write: Callable[[Path], None]) -> Path:
    """`root` as `write` fills it, written into a staging sibling and renamed into place, so `root` is
    either complete or absent; an existing `root` is reused as it is."""
    if root.is_dir():
        return root
    tmp = staging_folder(root, per_process=True)
    write(tmp)
    return replace_folder(tmp, root)


def run_demo_of(
    demo: Demo, out: Path | None, epochs: int | None, console: Console | None, **overrides: Any
) -> Run:
    console = console or make_console()
    run_dir = claim_run_dir(out or Path("runs") / f"{demo.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    data_dir = build_once(run_dir.parent / demo.data_folder, demo.write_data)
    console.print(f"[bold]demo[/bold]   {demo.about(data_dir)}")
    settings = {**demo.settings, **({"epochs": epochs} if epochs is not None else {}), **overrides}
    run = train(data=data_dir, out=run_dir, console=console, **settings)
    steps = demo.next_steps(run, data_dir)
    console.print(
        f"\n[bold green]validation accuracy {run.best_metric:.2%}[/bold green] "
        f"(best of {plural(len(run.history), 'epoch')}, {time.perf_counter() - started:.0f}s in all)\n"
        f"run     {run.path}\n" + "\n".join(f"{'next' if i == 0 else '':<8}{s}" for i, s in enumerate(steps)),
        highlight=False,
    )
    return run
