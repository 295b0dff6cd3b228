"""What the labels say the task is, and the labels as the task's values: never silently the wrong task.

A table's label cells are read as strings (data/discover.py, data/text_tables.py); `interpret` turns them
into a task (graft/tasks/) and per sample the label that task trains on:

  single-label   a class index          every distinct cell is a class
  multi-label    a tuple of indices     cells are label sets joined by `separator` ("red;right"), or come
                                        from one 0/1 column per label (--label-columns)
  regression     a float                cells are numbers

`--task auto` decides from the cells and the column's name. ';'-joined cells make it multi-label (before
tasks, such a CSV trained one class per combination); a 'target' column, numbers that are not all whole, or
more than MANY_NUMBERS distinct whole numbers make it regression (before, ages became 0%-accuracy classes).
A few whole numbers with gaps (a 1-4, 7-10 rating) stay classes, with a warning naming --task regression.
The task chosen is written into the run's config, so a resume reads split.csv the same way.
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from graft.errors import GraftError

SEPARATOR = ";"  # how multi-label cells join their labels (the convention of the shared data and peers)
MANY_NUMBERS = 20  # more distinct whole numbers than this (ages, prices) are a quantity, not classes
SHOWN = 3
# Used when a table has no 'label' column (the default --label-column): the name says the task.
FALLBACK_COLUMNS = {"labels": "multi-label", "target": "regression"}


@dataclass
class Interpreted:
    """The task the labels were read as, the class names (regression: the target's name), and per cell
    the label value the task trains on."""

    task: str
    classes: list[str]
    encode: Callable[[str], object]
    warnings: list[str] = field(default_factory=list)
    reason: str = ""  # why auto chose this task, for the run header ("" when it was given)


def interpret(train: Sequence[str], val: Sequence[str], choice: str, where: str, column: str = "label",
              separator: str = SEPARATOR) -> Interpreted:  # fmt: skip
    """The task `choice` ("auto" or a task name) for label cells `train` and `val`; raises for labels that
    the task cannot take (a word under regression, a validation class never trained)."""
    reason, auto = "", choice == "auto"
    detected, why = _detect([*train, *val], column, separator)
    if auto:
        choice, reason = detected, why
    if choice == "multi-label":
        result = _multi_label(train, val, where, separator)
    elif choice == "regression":
        result = _regression(train, val, where, column)
    else:
        result = _single_label(train, val, where)
        if auto:  # auto kept classes: a numeric scale that may want regression?
            result.warnings += _scale_warning([*train, *val])
    result.reason = reason
    # Asked for, but the labels say otherwise.
    if not auto and detected != choice and detected != "single-label":
        result.warnings.append(
            f"{why} in {where}, which reads as {detected}; trained as {choice}, as --task asks"
        )
    elif not auto and choice == "multi-label" and detected == "single-label":
        result.warnings.append(f"no sample in {where} has more than one label: single-label data, trained as "
                               "multi-label (one sigmoid per label), as --task asks")  # fmt: skip
    return result


def _detect(labels: Sequence[str], column: str, separator: str) -> tuple[str, str]:
    counts = Counter(labels)
    joined = [name for name in counts if _is_joined(name, separator)]
    if joined:
        n = sum(counts[name] for name in joined)
        return "multi-label", f"{n} of {len(labels)} samples have '{separator}'-separated labels"
    values = [_number(name) for name in counts]
    if len(values) >= 2 and all(v is not None for v in values):
        whole = all(v.is_integer() for v in values)
        if column.strip().lower() == "target":
            return "regression", f"the numeric column is named '{column}'"
        if not whole:
            return "regression", f"the labels are {len(values)} distinct numbers, not all whole"
        if len(values) > MANY_NUMBERS:
            return "regression", f"the labels are {len(values)} distinct whole numbers"
    return "single-label", ""


def _scale_warning(labels: Sequence[str]) -> list[str]:
    values = sorted({v for v in map(_number, set(labels)) if v is not None})
    if len(values) < 2 or len(values) != len(set(labels)) or not all(v.is_integer() for v in values):
        return []
    if values == [values[0] + i for i in range(len(values))]:  # 0..9 digits are classes; 1-4, 7-10 a scale?
        return []
    return [f"labels are the numbers {', '.join(f'{v:g}' for v in values)}: each is trained as an unordered "
            "class; a rating or a count may want --task regression"]  # fmt: skip


def _single_label(train: Sequence[str], val: Sequence[str], where: str) -> Interpreted:
    classes = sorted(set(train))
    unknown = sorted(set(val) - set(classes))
    if unknown:
        raise GraftError(
            f"validation labels {', '.join(map(repr, unknown[:5]))} never occur in the training data ({where}); "
            "add training samples for them or remove them from validation"
        )
    index = {name: i for i, name in enumerate(classes)}
    return Interpreted("single-label", classes, index.__getitem__)


def split_labels(cell: str, separator: str = SEPARATOR) -> tuple[str, ...]:
    """A multi-label cell's labels, stripped, without repeats or empty parts, in the cell's order."""
    return tuple(dict.fromkeys(part.strip() for part in cell.split(separator) if part.strip()))


def _multi_label(train: Sequence[str], val: Sequence[str], where: str, separator: str) -> Interpreted:
    classes = sorted({name for cell in train for name in split_labels(cell, separator)})
    unknown = sorted({name for cell in val for name in split_labels(cell, separator)} - set(classes))
    if unknown:
        raise GraftError(
            f"validation labels {', '.join(map(repr, unknown[:5]))} never occur in the training data ({where}); "
            "add training samples with them or remove them from validation"
        )
    index = {name: i for i, name in enumerate(classes)}
    return Interpreted("multi-label", classes,
                       lambda cell: tuple(sorted(index[n] for n in split_labels(cell, separator))))  # fmt: skip


def _regression(train: Sequence[str], val: Sequence[str], where: str, column: str) -> Interpreted:
    for cell in [*train, *val]:
        if _number(cell) is None:
            raise GraftError(
                f"regression needs a number in every row of {where}'s '{column}' column, got {cell!r}; "
                "fix the row, or train classes with --task single-label"
            )
    return Interpreted("regression", [column], lambda cell: float(cell))


def join_labels(names: Sequence[str], separator: str = SEPARATOR) -> str:
    """A multi-label cell from label names (split.csv, the in-memory tables)."""
    return separator.join(names)


def label_column(found: Sequence[str], requested: str, default: str = "label") -> str | None:
    """The header name to read labels from: `requested` (case-insensitive); when that is the default and
    absent, 'labels' or 'target'. None: none of them (the caller raises with `column_hint`)."""
    by_lower = {name.strip().lower(): name for name in found}
    if requested.strip().lower() in by_lower:
        return by_lower[requested.strip().lower()]
    if requested == default:
        return next((by_lower[name] for name in FALLBACK_COLUMNS if name in by_lower), None)
    return None


def indicator_columns(found: Sequence[str], patterns: Sequence[str], where: str) -> list[str]:
    """The header names that `patterns` (names, or globs such as "emo_*") pick as 0/1 label columns."""
    chosen: list[str] = []
    for pattern in patterns:
        matched = [
            name for name in found if fnmatch.fnmatchcase(name.strip().lower(), pattern.strip().lower())
        ]
        if not matched:
            raise GraftError(f"{where} has no column matching {pattern!r} for --label-columns "
                             f"(found: {', '.join(found)})")  # fmt: skip
        chosen += [name for name in matched if name not in chosen]
    if len(chosen) < 2:
        raise GraftError(
            f"--label-columns picks {len(chosen)} column(s) of {where}; multi-label needs at least 2"
        )
    return chosen


def indicator_cell(row: dict, columns: Sequence[str], where: str, separator: str = SEPARATOR) -> str:
    """One row's 0/1 label columns as a multi-label cell ("" when no label is on)."""
    on = []
    for name in columns:
        value = str(row.get(name) if row.get(name) is not None else "").strip().lower()
        if value in ("1", "1.0", "true", "yes"):
            on.append(name.strip())
        elif value not in ("0", "0.0", "false", "no", ""):
            raise GraftError(f"{where}: column {name!r} must hold 0 or 1 for --label-columns, got {value!r}")
    return separator.join(on)


def column_hint(found: Sequence[str], image_table: bool = False) -> str:
    """What a table's columns suggest when the label column is missing: '' or ' (...)' for the message."""
    lower = {name.strip().lower() for name in found}
    hints = []
    if "path" in lower and "text" not in lower and not image_table:
        hints.append("a 'path' column makes it an image table: pass the CSV itself (graft train DATA/train.csv "
                     "--val DATA/val.csv)")  # fmt: skip
    return f" ({'; '.join(hints)})" if hints else ""


def _is_joined(name: str, separator: str) -> bool:
    parts = name.split(separator)
    return len(parts) > 1 and all(part.strip() for part in parts)


def _number(name: str) -> float | None:
    try:
        value = float(name)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
