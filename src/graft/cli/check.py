"""`graft check DATA`: the data report `graft train` shows in one block, in full (data/check.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from graft.cli.options import (
    DATA,
    DEDUPE,
    DEVICE,
    LABEL_COLUMN,
    LABEL_COLUMNS,
    LABEL_SEPARATOR,
    MODALITY,
    MODEL,
    PATH_COLUMN,
    SEED,
    SET,
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
    labels: bool = typer.Option(
        False,
        "--labels",
        help="Find the labels that look wrong (confident learning on out-of-fold predictions "
        "of the probe's head on frozen features; needs cleanlab, the 'labels' extra of torchgraft), outliers "
        "and copies: a table here, label_issues.csv and label_issues.html in --out.",
    ),
    model: str | None = MODEL,
    folds: int | None = flag("--folds", help="--labels: cross-validation folds (default 5)."),
    fix: str | None = flag(
        "--fix",
        help="--labels: write the cleaned CSV beside DATA with the flagged training samples left out "
        "(drop) or given the suggested label (relabel); DATA is never modified.",
    ),
    cleaned: Path | None = flag(
        "--cleaned",
        help="Where --fix and --dedupe write the cleaned CSV (default DATA.cleaned.csv beside DATA).",
    ),
    out: Path | None = flag(
        "--out", "-o", help="--labels: the folder for its files (default runs/check-NAME)."
    ),
    device: str | None = DEVICE,
    set_: list[str] = SET,
    as_json: bool = typer.Option(False, "--json", help="The full report as JSON on stdout."),
) -> None:
    """Check DATA before training: the task, counts, sizes, unreadable files, imbalance, train/val leaks;
    with --labels, the labels that look wrong.

    Exit code 0 when training can use the data (warnings included), 2 when it cannot (or, with --strict,
    when files are unreadable). --dedupe and --fix write a cleaned CSV for graft train beside DATA.
    """
    from rich.markup import escape

    from graft.data.check import print_report
    from graft.data.cleaned import train_command
    from graft.data.label_issues import print_issues
    from graft.workflow.check import run_check

    cfg = resolve(None, set_, data=data, val=val, val_split=val_split, seed=seed, **task_flags(task, single_label, modality),
                  label_columns=label_columns, label_separator=label_separator, path_column=path_column,
                  text_column=text_column, label_column=label_column, text_pair_column=text_pair_column,
                  strict=strict, dedupe=dedupe, model=model, device=device)  # fmt: skip
    bars = None if as_json else make_console(stderr=True)  # progress bars on stderr, off under --json
    checked = run_check(cfg, labels=labels, folds=folds, fix=fix, out=out, cleaned=cleaned, console=bars)
    spec, kept, report = checked.spec, checked.kept, checked.report
    if as_json:
        print(json.dumps({**report.to_dict(), "kept": {"train": len(kept.train), "val": len(kept.val)}}))
        return
    console = make_console()
    print_report(console, spec, report, [*spec.warnings, *report.warnings])
    if cfg.data.dedupe:
        console.print(f"[bold]dedupe[/bold] training would use {len(kept.train)} train / {len(kept.val)} val "
                      "(graft train --dedupe)", highlight=False)  # fmt: skip
    if report.label_issues is not None:
        print_issues(console, report.label_issues)
    if report.cleaned is not None:
        line = f"wrote {report.cleaned}: {checked.cleaned_note}; next: {train_command(report.cleaned, spec)}"
        console.print(f"[bold]cleaned[/bold] {escape(line)}", highlight=False)
    console.print(
        "ok: graft train can use this data"
        + (" (see the warnings)" if report.warnings or spec.warnings else "")
    )
