"""Image tables: a CSV/TSV of image paths and labels (path,label[,split]; other column names by flag).

Paths are relative to the CSV's folder. Label cells are strings here: what they mean (a class, a set of
labels, a number) is data/label_kind.py's to decide. A run's split.csv is such a table (runs/split.py).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from graft.data.folders import split_of
from graft.data.label_kind import column_hint, indicator_cell, indicator_columns
from graft.data.label_kind import label_column as label_column_of
from graft.data.names import WHY, control_character, refuse_in_path
from graft.data.text_tables import TextColumns
from graft.errors import GraftError

CSV_SUFFIXES = (".csv", ".tsv")


def read_image_csv(
    path: Path, path_column: str = "path", columns: TextColumns = TextColumns()
) -> tuple[list[tuple[Path, str, str]], str]:
    """Rows of (absolute image path, label, split or '') from a path,label[,split] CSV/TSV, and the name of
    the column the labels came from; the path and label columns may have other names (--path-column,
    --label-column), matched case-insensitively; 'labels' or 'target' stand in for a missing 'label'."""
    label_column = columns.label
    if path.suffix.lower() not in CSV_SUFFIXES:
        raise GraftError(
            f"{path}: expected a folder or a .csv/.tsv file with {path_column},{label_column} columns"
        )
    try:
        # -sig: Excel writes a BOM that would rename 'path'; bytes, not read_text(): that turns a quoted \r
        # into \n, so the check below would name the wrong character
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise GraftError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    # A file object, not str.splitlines(): a quoted cell may hold a newline, which would otherwise be dropped
    # ("red\nline" read as "redline") or cut the row in two (also at \x85 and \u2028).
    reader = csv.DictReader(
        io.StringIO(text, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ","
    )
    found = list(reader.fieldnames or [])
    by_lower = {name.strip().lower(): name for name in found}
    indicators = indicator_columns(found, columns.label_columns, str(path)) if columns.label_columns else None
    label_key = label_column_of(found, label_column) if indicators is None else None
    missing = [c for c in (path_column,) if c.strip().lower() not in by_lower]
    missing += [label_column] if indicators is None and label_key is None else []
    if missing:
        raise GraftError(
            f"{path} needs columns {path_column},{label_column}; missing {', '.join(missing)} "
            f"(found: {', '.join(found) or 'no header'}){column_hint(found, image_table=True)}"
            "; graft train and graft check read other names with --path-column/--label-column"
        )
    path_key = by_lower[path_column.strip().lower()]
    rows, absent, seen, previous_end = [], [], {}, reader.line_num
    for row in reader:
        line_no, previous_end = previous_end + 1, reader.line_num  # the row's first line in the file
        rel = (row[path_key] or "").strip()
        label = ((row[label_key] or "").strip() if indicators is None
                 else indicator_cell(row, indicators, f"{path}:{line_no}", columns.separator))  # fmt: skip
        if not rel or not (label or indicators or columns.empty_labels):
            raise GraftError(
                f"{path}:{line_no}: empty path or label"
                + ("" if not rel else " (for label sets: --task multi-label reads an empty cell as no label)")
            )
        for what, value in (("path", rel), ("label", label)):
            char = control_character(value)
            if char is not None:
                raise GraftError(
                    f"{path}:{line_no}: the {what} {value!r} contains the control character {char!r}; "
                    f"{'rename the file' if what == 'path' else 'change the label'} ({WHY})"
                )
        split = (row[by_lower["split"]] or "").strip().lower() if "split" in by_lower else ""
        split = split_of(split) or split
        if split not in ("", "train", "val", "test"):
            raise GraftError(f"{path}:{line_no}: split must be train, val or test, got {split!r}")
        image = (path.parent / rel).resolve()
        if control_character(str(image)) is not None:  # a folder above the file, or a link's target
            refuse_in_path(image, "file")
        if not image.is_file():
            absent.append(rel)
        if image in seen:  # a repeated file would count twice, or sit in both train and val
            other = f" with another label ({seen[image]!r} vs {label!r})" if seen[image] != label else ""
            raise GraftError(f"{path}:{line_no}: {rel} is listed a second time{other}; keep one row per file")
        seen[image] = label
        rows.append((image, label, split))
    if absent:
        raise GraftError(
            f"{path}: {len(absent)} listed file(s) do not exist, e.g. {', '.join(absent[:3])} "
            f"(paths are relative to {path.parent})"
        )
    if not rows:
        raise GraftError(f"{path} has a header but no rows")
    return rows, ("labels" if indicators else label_key)
