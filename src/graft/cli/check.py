"""`graft check DATA`: the data report `graft train` shows in one block, in full (data/check.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from graft.cli.options import (
    DATA,
    DEDUPE,
    LABEL_COLUMN,
    LABEL_COLUMNS,
    LABEL_SEPARATOR,
    MODALITY,
    PATH_COLUMN,
    SEED,
    SINGLE_LABEL,
    STRICT,
    TASK,
    TEXT_COLUMN,
    TEXT_PAIR_COLUMN,
    D,
    flag,
    resolve,
    task_flags,
)
from graft.monitoring.console import make_console


def check_command(
    data: Path = DATA,
    val: Path | None = flag("--val", help="Validation folder or CSV (overrides val/ inside DATA)."),
    val_split: float | None = flag(
        "--val-split", help=f"Fraction held out when DATA has no val/ (default {D.data.val_split})."
    ),
    seed: int | None = SEED,
    task: str | None = TASK,
    single_label: bool = SINGLE_LABEL,
    label_columns: str | None = LABEL_COLUMNS,
    label_separator: str | None = LABEL_SEPARATOR,
    modality: str | None = MODALITY,
    path_column: str | None = PATH_COLUMN,
    label_column: str | None = LABEL_COLUMN,
    text_column: str | None = TEXT_COLUMN,
    text_pair_column: str | None = TEXT_PAIR_COLUMN,
    strict: bool | None = STRICT,
    dedupe: bool | None = DEDUPE,
    as_json: bool = typer.Option(False, "--json", help="The full report as JSON on stdout."),
) -> None:
    """Check DATA before training: the task, counts, sizes, unreadable files, imbalance, train/val leaks.

    Exit code 0 when training can use the data (warnings included), 2 when it cannot (or, with --strict,
    when files are unreadable).
    """
    from graft.data.check import apply_checks, check_data, print_report
    from graft.data.discover import discover_config

    cfg = resolve(None, [], data=data, val=val, val_split=val_split, seed=seed, **task_flags(task, single_label, modality),
                  label_columns=label_columns, label_separator=label_separator, path_column=path_column,
                  text_column=text_column, label_column=label_column, text_pair_column=text_pair_column,
                  strict=strict, dedupe=dedupe)  # fmt: skip
    spec = discover_config(cfg)
    report = check_data(spec, console=None if as_json else make_console(stderr=True))  # the bar on stderr
    kept = apply_checks(spec, report, cfg.data.strict, cfg.data.dedupe)
    if as_json:
        print(json.dumps({**report.to_dict(), "kept": {"train": len(kept.train), "val": len(kept.val)}}))
        return
    console = make_console()
    print_report(console, spec, report, [*spec.warnings, *report.warnings])
    if cfg.data.dedupe:
        console.print(f"[bold]dedupe[/bold] training would use {len(kept.train)} train / {len(kept.val)} val "
                      "(graft train --dedupe)", highlight=False)  # fmt: skip
    console.print(
        "ok: graft train can use this data"
        + (" (see the warnings)" if report.warnings or spec.warnings else "")
    )
