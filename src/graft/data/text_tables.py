"""Text classification data: tables of text and label, found, checked and split like image folders.

Accepted layouts:
  DATA.csv | DATA.tsv | DATA.jsonl      columns text,label[,split] (names set by --text-column/--label-column;
                                        an optional second text for pair tasks via --text-pair-column)
  DATA/train.csv + DATA/val.csv         a file pair (also .tsv/.jsonl; val may be valid/validation)
Without a validation file or split column, `val_split` of each class is held out (stratified, seeded), as
for images. The exact split is saved as the run's split.csv (text,label,split), itself a valid input: texts
may hold newlines (csv quotes them), labels may not hold control characters (data/names.py).

Nothing is tokenized here; that happens once per run in data/tokens.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from graft.data.label_kind import SEPARATOR, column_hint, indicator_cell, indicator_columns, label_column
from graft.data.names import WHY, control_character
from graft.errors import GraftError

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
MISSING_LABELS = ("", "nan", "none", "null", "na", "n/a")  # what pandas and spreadsheets write for "no value"


@dataclass(frozen=True)
class TextSample:
    text: str
    label: int
    pair: str | None = None  # the second text of a pair task (premise/hypothesis, question/answer)

    @property
    def key(self) -> str:
        """A stable sort key (the text itself), as an image sample's is its path."""
        return f"{self.text}\x00{self.pair or ''}"


@dataclass(frozen=True)
class TextColumns:
    """Where a table's columns are (image CSVs use `label` and the label options too)."""

    text: str = "text"
    label: str = "label"
    pair: str | None = None
    label_columns: tuple[str, ...] | None = None  # multi-label as 0/1 columns (names or globs)
    separator: str = SEPARATOR  # between the labels of a multi-label cell
    empty_labels: bool = False  # an empty label cell is an empty label set (multi-label), not a missing label


def is_text_data(path: Path, columns: TextColumns = TextColumns()) -> bool:
    """Whether DATA is a text table (or a folder holding train/val tables) rather than images."""
    path = Path(path)
    if path.is_dir():
        return table_in(path, ("train", "training")) is not None
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return True
    if suffix not in (".csv", ".tsv") or not path.is_file():
        return False
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        header = next(csv.reader(f, delimiter="\t" if suffix == ".tsv" else ","), [])
    names = {h.strip().lower() for h in header}
    return columns.text.lower() in names and "path" not in names


def read_table(path: Path, columns: TextColumns) -> tuple[list[tuple[str, str, str | None, str]], str]:
    """Rows of (text, label, pair, split) from a CSV/TSV/JSONL file, with errors that say where, and the
    name of the column the labels came from (data/label_kind.py `label_column`)."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise GraftError(f"{path}: text data must be a .csv, .tsv or .jsonl file")
    try:
        raw = path.read_bytes().decode("utf-8-sig")  # -sig: a BOM from Excel would rename the first column
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise GraftError(
            f"{path}:{line}: not UTF-8 text (byte {err.start}: {path.read_bytes()[err.start : err.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None
    if suffix in (".jsonl", ".json"):
        records = []
        for line_no, line in enumerate(raw.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((line_no, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise GraftError(
                        f"{path}:{line_no}: not a JSON object ({err.msg}); one object per line"
                    ) from None
        found = sorted({k for _, r in records if isinstance(r, dict) for k in r})
    else:
        # A file object, not str.splitlines(): that also splits on \x85, \u2028 and other characters that
        # real texts contain inside quoted fields (IMDB reviews do), cutting rows in two.
        reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        records, previous_end = [], 1
        for row in reader:  # each row's first line in the file (a quoted field may span several)
            records.append((previous_end + 1, row))
            previous_end = reader.line_num
        found = list(reader.fieldnames or [])
    by_lower = {name.strip().lower(): name for name in found}
    indicators = indicator_columns(found, columns.label_columns, str(path)) if columns.label_columns else None
    label_key = label_column(found, columns.label) if indicators is None else None
    wanted = [columns.text] + ([columns.pair] if columns.pair else [])
    missing = [c for c in wanted if c.lower() not in by_lower] + (
        [columns.label] if indicators is None and label_key is None else []
    )
    if missing:
        raise GraftError(
            f"{path} has no column {', '.join(repr(m) for m in missing)} (found: {', '.join(found) or 'none'}"
            f"){column_hint(found)}; name the columns with --text-column/--label-column"
        )
    text_key = by_lower[columns.text.lower()]
    pair_key = by_lower[columns.pair.lower()] if columns.pair else None
    split_key = by_lower.get("split")
    rows, empty, unlabeled = [], [], []
    for line_no, record in records:
        if not isinstance(record, dict):
            raise GraftError(
                f"{path}:{line_no}: expected a JSON object with {columns.text} and {columns.label}"
            )
        text = _cell(record.get(text_key))
        label = (_cell(record.get(label_key)) if indicators is None
                 else indicator_cell(record, indicators, f"{path}:{line_no}", columns.separator))  # fmt: skip
        pair = _cell(record.get(pair_key)) if pair_key else None
        if not text.strip() or (pair_key and not (pair or "").strip()):
            empty.append(line_no)
            continue
        if label.lower() in MISSING_LABELS and not (indicators or columns.empty_labels):
            unlabeled.append(line_no)
            continue
        char = control_character(label)
        if char is not None:  # texts may hold newlines (csv quotes them), a class name may not
            raise GraftError(
                f"{path}:{line_no}: the label {label!r} contains the control character {char!r}; "
                f"change the label ({WHY})"
            )
        split = _cell(record.get(split_key)).lower() if split_key else ""
        split = {"training": "train", "valid": "val", "validation": "val", "testing": "test"}.get(
            split, split
        )
        if split not in ("", "train", "val", "test"):
            raise GraftError(f"{path}:{line_no}: split must be train, val or test, got {split!r}")
        rows.append((text, label, pair, split))
    if empty:
        raise GraftError(
            f"{path}: {len(empty)} row(s) with an empty text, e.g. line(s) {', '.join(map(str, empty[:5]))}; "
            "remove them or fill them in"
        )
    if unlabeled:
        raise GraftError(
            f"{path}: {len(unlabeled)} row(s) without a label (empty or NaN), e.g. line(s) "
            f"{', '.join(map(str, unlabeled[:5]))}; label them or remove them"
            + (MULTI_LABEL_HINT if label_key.strip().lower() == "labels" or any(columns.separator in r[1] for r in rows)
               else "")
        )  # fmt: skip
    if not rows:
        raise GraftError(f"{path} has no rows")
    return rows, ("labels" if indicators else label_key)


MULTI_LABEL_HINT = " (or, for label sets, --task multi-label: an empty cell is a sample with no label)"


def find_text_files(path: Path, val: Path | None) -> tuple[Path, Path | None, str]:
    """(train table, val table or None, description) for a table or a folder holding a train/val pair."""
    if path.is_file():
        return path, val, f"table {path.name}"
    train = table_in(path, ("train", "training"))
    if train is None:
        raise GraftError(f"{path} has no train.csv/.tsv/.jsonl (text data) and no class folders (images)")
    val_file = val or table_in(path, ("val", "valid", "validation"))
    return train, val_file, f"files {train.name}" + (f" and {val_file.name}" if val_file else "")


def table_in(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for candidate in sorted(folder.iterdir()):
        if (
            candidate.is_file()
            and candidate.stem.lower() in stems
            and candidate.suffix.lower() in TEXT_SUFFIXES
        ):
            return candidate
    return None


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip() if not isinstance(value, str) else value.strip()
