"""`graft.train(data=...)` beyond a path: each in-memory form becomes a CSV that the usual discovery reads,
so checks, split.csv, resume, eval, the report and the bundle are the same as for a file.

  a pandas DataFrame                     a path or text column and a label column, as a CSV's
  a list of (path or text, label) pairs  image paths (or image file names), or texts; labels as a Dataset's
  a map-style torch Dataset              (sample, label) items: images (PIL, numpy, tensors) or texts, and
  (or a list of (image, label) pairs)    class indices, names, numbers or multi-hot vectors
                                         (data/torch_datasets.py; ImageFolder's files are used as they are)
  a Hugging Face datasets.Dataset        an Image or text column and a label column; a DatasetDict's
  or DatasetDict                         train/validation splits are kept (data/hf_datasets.py)

Image paths are made absolute first (a DataFrame's relative paths mean "from here", a CSV's "from the
CSV"); split.csv then holds them, so the temporary table is never needed again. Images that exist only in
memory are written once, as files, into the cache (data/materialize.py, data/cache_dir.py).

What a Dataset object must guarantee: graft reads it once, in index order, when `graft.train` (or
`graft.check`) is called, and trains on what it returned. Items must be the plain samples, un-normalized
and un-augmented: graft applies the model's own normalization and its own augmentations per epoch (a float
image outside [0, 1], or an item that changes between two reads, is refused). Resume, eval and the report
read the written files and split.csv, so the object is not needed again.

A dataset object's labels say the task (a float is regression, a vector or a list of names multi-label),
so it is handed to the config unless the run names one. Anything else is refused in one line that names
what is accepted, instead of a validation error that prints the whole object. torch and datasets are never
imported to recognise their objects (`sys.modules`): `graft.check` on a path stays cheap.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.config import Config
from graft.data.folders import is_image_name
from graft.data.hf_datasets import hf_table, is_hf_dataset
from graft.data.materialize import DataOptions, Row, write_table
from graft.data.torch_datasets import Labels, is_iterable_only, is_map_dataset, torch_table, type_name
from graft.errors import GraftError

ACCEPTED = (
    "a folder or CSV path, a pandas DataFrame, (path or text, label) pairs, a map-style torch Dataset of "
    "(sample, label), or a Hugging Face Dataset"
)


@dataclass(frozen=True)
class DataArgument:
    path: Any  # what `data.path` is set to: the path given (or None), or the CSV written
    task: str | None = None  # the task a dataset object's labels say; None: discovery reads the labels


@contextmanager
def naming_objects(written: dict[str, str]) -> Iterator[None]:
    """A GraftError raised inside that names a CSV graft wrote for an object (`written`: its path -> which
    object) ends by saying so: the user passed an object and never saw that file."""
    try:
        yield
    except GraftError as err:
        named = [
            f"{path} is the CSV graft wrote for {what}" for path, what in written.items() if path in str(err)
        ]
        if not named:
            raise
        raise GraftError(f"{err} ({'; '.join(named)})") from None


def written_as(argument: str, data: Any, found: DataArgument) -> dict[str, str]:
    """{CSV path: "the X given as `argument`"} when `found` is a CSV written for the object `data`; else {}."""
    return {} if is_path(data) else {str(found.path): f"the {type_name(data)} given as {argument}"}


def is_path(data: Any) -> bool:
    """A path or a name (or nothing), taken as it is: no object to write (data) or resolve (model) first."""
    return data is None or isinstance(data, (str, os.PathLike))


def options_of(cfg: Config) -> DataOptions:
    """How a run's config reads a dataset object: the columns it names (None where it keeps discovery's
    default, so an HF dataset's own column is found by name), the separator, the cache, quiet."""
    d = cfg.data
    given = lambda value, default: None if value == default else value  # noqa: E731
    return DataOptions(given(d.path_column, "path"), given(d.text_column, "text"), given(d.label_column, "label"),
                       d.text_pair_column, d.label_separator, d.modality, d.cache_dir, cfg.log.quiet,
                       bool(d.label_columns))  # fmt: skip


def as_data_path(data: Any, options: DataOptions = DataOptions()) -> DataArgument:
    """`data` unchanged when it is a path (or None); else the path of a CSV holding it."""
    if is_path(data):
        return DataArgument(data)
    if hasattr(data, "to_csv") and hasattr(data, "columns"):  # a pandas DataFrame (duck-typed: no import)
        return DataArgument(_from_frame(data, options.path_column or "path"))
    if is_hf_dataset(data):
        table = hf_table(data, _without_label_columns(options))
        return DataArgument(table.path, table.task)
    if isinstance(data, Sequence) and data and all(_is_pair(item) for item in data):
        return _from_pairs(data, options)
    if is_iterable_only(data):
        raise GraftError(f"data: got a {type_name(data)}, an IterableDataset: it has no length or index to read "
                         "once and split; give graft a map-style Dataset (__len__ and __getitem__)")  # fmt: skip
    if is_map_dataset(data):
        table = torch_table(data, _without_label_columns(options))
        return DataArgument(table.path, table.task)
    raise GraftError(f"data: got a {type_name(data)}; graft.train takes {ACCEPTED}")


def _without_label_columns(options: DataOptions) -> DataOptions:
    if options.label_columns:
        raise GraftError("label_columns: names 0/1 columns of a table; a dataset object's multi-label labels are "
                         "a multi-hot vector or a list of names per sample: drop label_columns")  # fmt: skip
    return options


def _from_frame(frame: Any, path_column: str) -> Path:
    frame = frame.copy()
    wanted = path_column.strip().lower()  # the column discovery reads: case and spaces aside (image_tables)
    for column in [c for c in frame.columns if str(c).strip().lower() == wanted]:
        # Relative to where the user is, as a DataFrame means it; a missing cell (NaN, None) stays empty
        # for discovery to name, as a CSV's would.
        frame[column] = [str(Path(str(p).strip()).resolve()) if isinstance(p, (str, os.PathLike)) and str(p).strip()
                         else p for p in frame[column]]  # fmt: skip
    out = _staging_csv()
    frame.to_csv(out, index=False)
    return out


def _from_pairs(pairs: Sequence[Any], options: DataOptions) -> DataArgument:
    """Written as a Dataset's items are (a label's cell from what it is: str(tensor(1)) would name a class
    'tensor(1)'). Labels that are all strings leave the task to discovery, as a CSV's cells do."""
    images, labels = _are_image_paths(pairs[0][0]), Labels(None)

    def rows() -> Iterator[Row]:
        for index, (item, label) in enumerate(pairs):
            task, value = labels.read(label, index)
            yield Row(Path(item).resolve() if images else str(item), value, task)

    table = write_table(rows(), len(pairs), options.columns(text=not images), options)
    return DataArgument(table.path, None if all(isinstance(b, str) for _, b in pairs) else table.task)


def _are_image_paths(first: str | os.PathLike) -> bool:
    """Pairs of image paths, not of texts: a PathLike, an image file's name or an existing file. A path with
    a typo is still a path (discovery names it missing), never a text to train a text model on."""
    if isinstance(first, os.PathLike) or is_image_name(first):
        return True
    try:
        return Path(first).is_file()
    except (OSError, ValueError):  # a text longer than a file name may be, or one holding a NUL
        return False


def _staging_csv() -> Path:
    # A temporary folder of its own: the CSV is read once, by discovery; the run keeps split.csv.
    return Path(tempfile.mkdtemp(prefix="graft-data-")) / "data.csv"


def _is_pair(item: Any) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (str, os.PathLike))
