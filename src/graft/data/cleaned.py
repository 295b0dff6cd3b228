"""The cleaned CSV: the data as `graft check` would have it (`--fix drop|relabel`, `--dedupe`), written beside
it as a new file; the user's files are never modified.

    DATA/ (a folder)      -> DATA.cleaned.csv beside the folder
    DATA.csv, DATA.jsonl  -> DATA.cleaned.csv in the same folder

It is a run's split.csv (runs/split.py): path,label,split with absolute paths, or text,label,split[,text_pair],
so `graft train DATA.cleaned.csv` trains on exactly these samples with exactly the check's split (the data's
own val split, or the seeded one the check made: a run on the cleaned CSV validates on the same samples as
a run on DATA did, so the two compare). Test rows and test/ folders are not part of it: evaluate on them
as before (`graft eval RUN --data DATA`). An existing file is never replaced: the check refuses, before
any work, and names --cleaned.
"""

from __future__ import annotations

import os
from pathlib import Path

from graft.data.discover import DataSpec, Label, class_indices
from graft.errors import GraftError
from graft.files import write_atomic
from graft.runs.split import ImageRow, Row, TextRow, write_rows

SUFFIX = ".cleaned.csv"


def cleaned_path(data: Path) -> Path:
    """Where the cleaned CSV of `data` goes by default: beside it, named after it (beside a symlink to the
    data, not its target: that may be read-only)."""
    data = Path(os.path.normpath(data))  # as given (relative stays relative), without a trailing slash
    if data.name in ("", ".", ".."):
        data = Path(os.path.abspath(data))
    name = data.name if data.is_dir() else data.stem
    return data.parent / f"{name}{SUFFIX}"


def claim_cleaned(path: Path, data: Path) -> Path:
    """Check that the cleaned CSV can be written at `path` (absent, in a writable folder, not one of the
    data's own files); creates nothing."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise GraftError(f"--cleaned {path}: the cleaned data is a CSV; give a path ending in .csv")
    if path.exists() or path.resolve() == Path(data).resolve():
        raise GraftError(
            f"{path} already exists (an earlier check's?); remove it or choose another with --cleaned FILE "
            "(nothing was written)"
        )
    folder = path.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise GraftError(
            f"cannot write {path}: {folder} is not a writable folder (read-only data?); "
            "choose where with --cleaned FILE"
        )
    return path


def whole_classes(spec: DataSpec, flagged: set[str]) -> list[int]:
    """The classes (multi-label: labels) all of whose training samples are in `flagged`: `--fix` leaves
    those samples as they are. The out-of-fold model then never saw the class with a label it could trust,
    so its doubts say nothing about them; and dropping or relabelling them all would take the class out of
    training while validation still has it, which `graft train` refuses (goemotions with 5% of the labels
    flipped: every training sample of 'grief' and of 'relief' was flagged)."""
    seen: dict[int, bool] = {}  # class -> some training sample of it is not flagged
    for sample in spec.train:
        for c in class_indices(sample.label):
            seen[c] = seen.get(c, False) or sample.key not in flagged
    return sorted(c for c, kept in seen.items() if not kept)


def spare(spec: DataSpec, flagged: set[str], classes: list[int]) -> set[str]:
    """`flagged` without the training samples of any of `classes`."""
    held = set(classes)
    return {s.key for s in spec.train if s.key in flagged and held.isdisjoint(class_indices(s.label))}


def cleaned_rows(
    spec: DataSpec, drop: set[str] = frozenset(), relabel: dict[str, Label] | None = None
) -> list[Row]:
    """The split.csv rows of `spec` without the samples whose key is in `drop`, with the labels of
    `relabel` (key -> label) replacing the given ones."""
    relabel = relabel or {}
    rows: list[Row] = []
    for split in ("train", "val"):
        for s in getattr(spec, split):
            if s.key in drop:
                continue
            label = spec.label_text(relabel.get(s.key, s.label))
            if spec.modality == "text":
                rows.append(TextRow(s.text, label, split, s.pair))
            else:
                rows.append(ImageRow(Path(s.path), label, split))
    return rows


def write_cleaned(path: Path, spec: DataSpec, drop: set[str] = frozenset(),
                  relabel: dict[str, Label] | None = None) -> Path:  # fmt: skip
    """Write the cleaned CSV (`cleaned_rows`) at `path`, whole or not at all."""
    rows = cleaned_rows(spec, drop, relabel)
    return write_atomic(Path(path), lambda tmp: write_rows(tmp, rows, text=spec.modality == "text"))


def train_command(path: Path, spec: DataSpec) -> str:
    """The `graft train` command for the cleaned CSV: the flags it needs to be read as the same task."""
    flags = [f"graft train {path}"]
    numbers_or_sets = any(spec.separator in c or _is_number(c) for c in spec.classes)
    if spec.task.name != "single-label" or numbers_or_sets:  # what auto could read as another task
        flags.append(f"--task {spec.task.name}")
    if spec.task.name == "multi-label" and spec.separator != ";":
        flags.append(f"--label-separator '{spec.separator}'")
    if spec.modality == "text" and any(s.pair is not None for s in spec.train):
        flags.append("--text-pair-column text_pair")
    return " ".join(flags)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
