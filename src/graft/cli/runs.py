"""`graft runs [RUNS_DIR]`: every run, whether it is running, finished, stopped or crashed, and its best."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from graft.errors import GraftError
from graft.files import json_ready
from graft.monitoring.console import make_console

COLORS = {"running": "cyan", "finished": "green", "stopped": "yellow", "crashed": "red"}


def runs_command(
    runs_dir: Path = typer.Argument(Path("runs"), help="The folder holding run folders."),
    json_: bool = typer.Option(False, "--json", help="Print JSON (a list of runs) for machines."),
) -> None:
    """List runs, newest first: status (and whether it can be resumed), epochs, best metric."""
    from graft.runs.status import read_runs

    if not runs_dir.is_dir():
        what = "is not a folder" if runs_dir.exists() else "not found"
        raise GraftError(f"runs folder {runs_dir} {what}; pass the folder `graft train` wrote runs into")
    runs = read_runs(runs_dir)
    if json_:
        print(json.dumps(json_ready([r.to_dict() for r in runs]), indent=2))
        return
    console = make_console()
    if not runs:
        console.print(f"no runs in {runs_dir} (a run is a folder with a config.yaml)", highlight=False)
        return
    notes = any(r.note for r in runs)
    table = Table("run", "status", "epochs", "best", "updated", *(["note"] if notes else []))
    for r in runs:
        status = f"[{COLORS[r.status]}]{r.status}[/]" + (" (resumable)" if r.resumable else "")
        epochs = f"{r.epochs_done}/{r.epochs_total if r.epochs_total is not None else '?'}"
        best = f"{r.monitor} {_shown(r.monitor, r.best)} @ {r.best_epoch}" if r.best is not None else "-"
        updated = f"{r.updated:%Y-%m-%d %H:%M}" if r.updated else "-"
        table.add_row(r.name, status, epochs, best, updated, *([r.note or ""] if notes else []))
    console.print(table)
    resumable = [r for r in runs if r.resumable]
    if resumable:
        console.print(
            f"resume with: graft resume {resumable[0].path}"
            + (f"  (the newest of {len(resumable)} resumable runs)" if len(resumable) > 1 else ""),
            highlight=False,
        )


def _shown(monitor: str, value: float) -> str:
    # The same format as the training lines: accuracy in percent, losses with 4 decimals.
    return f"{value:.2%}" if monitor.endswith("acc") else f"{value:.4f}"
