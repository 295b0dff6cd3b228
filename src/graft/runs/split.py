"""split.csv: the exact train/val split a run trained on, written and read here only.

    path,label,split                 an image run: one row per image, its absolute path
    text,label,split[,text_pair]     a text run: one row per text (text_pair for pair tasks)

Train rows first, then val rows, in the order training saw the samples. The file is itself a valid
`graft train` input CSV, on purpose: `graft resume` rebuilds the data from it with graft.data's own
discovery (workflow/resume.py), so a resumed run trains on exactly these samples.

The writer takes plain rows (runs/ sits below graft.data, so the caller turns its samples into rows).
Every reader goes through `read_split`, which raises one GraftError naming the file for anything it
cannot use (missing, not UTF-8, no path or text column); callers that can do without the split catch it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from graft.errors import GraftError
from graft.runs.folder import RunFolder

IMAGE_COLUMNS = ("path", "label", "split")
TEXT_COLUMNS = ("text", "label", "split")
PAIR_COLUMN = "text_pair"


@dataclass(frozen=True)
class ImageRow:
    path: Path  # absolute
    label: str  # the class name
    split: str  # "train" or "val"


@dataclass(frozen=True)
class TextRow:
    text: str
    label: str
    split: str
    pair: str | None = None  # the second text of a pair task


Row = ImageRow | TextRow


def write_rows(path: Path, rows: Sequence[Row], text: bool) -> None:
    """split.csv at `path` from `rows` (all ImageRow, or all TextRow when `text`). Text rows get a
    text_pair column when the first row has a pair (a pair task's rows all do)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if text:
            pairs = bool(rows) and rows[0].pair is not None
            writer.writerow([*TEXT_COLUMNS, *([PAIR_COLUMN] if pairs else [])])
            writer.writerows([r.text, r.label, r.split, *([r.pair] if pairs else [])] for r in rows)
            return
        writer.writerow(IMAGE_COLUMNS)
        writer.writerows([str(r.path.resolve()), r.label, r.split] for r in rows)


def read_split(run: Path, split: str | None = None) -> list[Row]:
    """The rows of `run`'s split.csv in file order, only those of `split` ("train"/"val") when given:
    ImageRow for an image run, TextRow for a text run."""
    path = RunFolder(run).split
    if not path.is_file():
        raise GraftError(f"run {run} has no split.csv")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = set(reader.fieldnames or [])
            if "path" in columns:
                rows: list[Row] = [
                    ImageRow(Path(r["path"] or ""), r.get("label") or "", r.get("split") or "")
                    for r in reader
                ]
            elif "text" in columns:
                rows = [
                    TextRow(r["text"] or "", r.get("label") or "", r.get("split") or "", r.get(PAIR_COLUMN))
                    for r in reader
                ]
            else:
                raise GraftError(
                    f"{path} has neither a path nor a text column (found: {', '.join(columns) or 'none'})"
                )
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise GraftError(f"cannot read {path}: {err}") from None
    return rows if split is None else [r for r in rows if r.split == split]


def labels(rows: Iterable[Row]) -> list[str]:
    """The distinct class names of `rows`, sorted."""
    return sorted({r.label for r in rows})
