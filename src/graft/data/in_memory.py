"""`graft.train(data=...)` beyond a path: a pandas DataFrame, or a sequence of (path or text, label) pairs,
written to a CSV that the usual discovery reads, so checks, split.csv, resume and the bundle are the same as
for a file. Image paths are made absolute first (a DataFrame's relative paths mean "from here", a CSV's
"from the CSV"); split.csv then holds them, so the temporary table is never needed again.

Anything else (a torch Dataset, a Hugging Face datasets.Dataset) is refused in one line that names what
is accepted, instead of a validation error that prints the whole object.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graft.errors import GraftError

ACCEPTED = "a folder or CSV path, a pandas DataFrame, or a list of (path or text, label) pairs"


def as_data_path(data: Any, path_column: str = "path", text_column: str = "text") -> Any:
    """`data` unchanged when it is a path (or None); else the path of a CSV holding it."""
    if data is None or isinstance(data, (str, os.PathLike)):
        return data
    if hasattr(data, "to_csv") and hasattr(data, "columns"):  # a pandas DataFrame (duck-typed: no import)
        return _from_frame(data, path_column)
    if isinstance(data, Sequence) and data and all(_is_pair(item) for item in data):
        return _from_pairs(data)
    raise GraftError(f"data: got a {_kind(data)}; graft.train takes {ACCEPTED}")


def _from_frame(frame: Any, path_column: str) -> Path:
    frame = frame.copy()
    if path_column in frame.columns:  # relative to where the user is, as a DataFrame means it
        frame[path_column] = [str(Path(p).resolve()) for p in frame[path_column]]
    out = _staging_csv()
    frame.to_csv(out, index=False)
    return out


def _from_pairs(pairs: Sequence[Any]) -> Path:
    first = pairs[0][0]
    images = isinstance(first, os.PathLike) or Path(str(first)).is_file()
    out = _staging_csv()
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path" if images else "text", "label"])
        writer.writerows([str(Path(a).resolve()) if images else str(a), str(b)] for a, b in pairs)
    return out


def _staging_csv() -> Path:
    # A temporary folder of its own: the CSV is read once, by discovery; the run keeps split.csv.
    return Path(tempfile.mkdtemp(prefix="graft-data-")) / "data.csv"


def _is_pair(item: Any) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (str, os.PathLike))


def _kind(data: Any) -> str:
    kind = type(data)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
