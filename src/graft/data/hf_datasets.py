"""A Hugging Face `datasets.Dataset` (or a `DatasetDict` of splits) as rows for data/materialize.py.

Columns, by default the first present of each group (the `path_column`, `text_column` and `label_column`
arguments name others):
  image    image, img, path    an `Image` feature, or strings that are image paths
  text     text, sentence      strings (and `text_pair_column` for pair tasks)
  label    label, labels, target
The label feature says the task: `ClassLabel` (its names are the classes), ints (the number is the name)
or strings -> single-label; floats -> regression; a list (`Sequence`/`List`) of ClassLabel, ints or
strings -> multi-label. An image stored with the path of a file that exists is used from there;
otherwise its stored bytes are written into the cache as they are (already encoded: nothing is
re-encoded). A DatasetDict's train and validation splits (train/training, validation/val/valid) become the
split column discovery reads, so graft validates on the given split; without one it holds out part of
train, as for any CSV; a test split, or any other, is left out with a warning.

The stored data is read, not the formatted rows: a `set_transform` or `with_format` on the dataset (an
augmentation, tensors) is not applied, since graft does its own preprocessing and augmentation. The
dataset is read once, in row order; resume, eval and the report then read the files, not the object.
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from graft.data.folders import split_of
from graft.data.materialize import DataOptions, Encoded, Row, Table, write_table
from graft.errors import GraftError

WHAT = "data"
IMAGE_COLUMNS = ("image", "img", "path")
TEXT_COLUMNS = ("text", "sentence")
LABEL_COLUMNS = ("label", "labels", "target")
LIST_FEATURES = ("List", "LargeList", "Sequence")  # a list of labels per row: multi-label
KEPT = ("train", "val")  # a DatasetDict's splits that train and validate, in that order
BATCH = 256  # rows per arrow read: one python dict per row would be slow on big datasets


def is_hf_dataset(data: Any) -> bool:
    datasets = sys.modules.get("datasets")  # an HF object exists only where its module is imported
    return datasets is not None and isinstance(
        data, (datasets.Dataset, datasets.DatasetDict, datasets.IterableDataset, datasets.IterableDatasetDict)
    )


def hf_table(data: Any, options: DataOptions) -> Table:
    """The table of `data` (a Dataset or a DatasetDict), read with `options`' columns."""
    import datasets

    if isinstance(data, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise GraftError(f"{WHAT}: a streaming (iterable) Hugging Face dataset has no length to read once and "
                         "split; load it without streaming=True, or take rows with Dataset.from_generator")  # fmt: skip
    splits = _splits(data) if isinstance(data, datasets.DatasetDict) else [("", data)]
    first = splits[0][1]
    image, text = _item_column(first, options)
    label = _column(first, options.label_column, LABEL_COLUMNS, "label", "label_column")
    pair = options.pair_column
    if pair is not None and pair not in first.column_names:
        raise GraftError(f"text_pair_column: the dataset has no column {pair!r} (its columns: "
                         f"{', '.join(first.column_names)})")  # fmt: skip
    read_label = _label_reader(first.features[label], label)
    column = image or text
    stored_image = image is not None and isinstance(first.features[image], datasets.Image)

    read_item = _image if stored_image else _path if image else _text
    wanted = [column, label, *([pair] if pair else [])]
    for split, ds in splits[1:]:
        missing = [c for c in wanted if c not in ds.column_names]
        if missing:
            raise GraftError(f"{WHAT}: the {split} split has no column {', '.join(missing)} (its columns: "
                             f"{', '.join(ds.column_names)}); give every split the train split's columns")  # fmt: skip

    def rows() -> Iterator[Row]:
        for split, ds in splits:
            raw = ds.with_format(None).select_columns(wanted)
            if stored_image:  # the stored {bytes, path}, not a decoded PIL image
                raw = raw.cast_column(image, datasets.Image(decode=False))
            start = 0
            for batch in raw.iter(batch_size=BATCH):
                for j in range(len(batch[column])):
                    where = f"row {start + j}" + (f" of the {split} split" if split else "")
                    task, value = read_label(batch[label][j], where)
                    item = read_item(batch[column][j], where)
                    yield Row(item, value, task, split, _text(batch[pair][j], where) if pair else None)
                start += len(batch[column])

    total = sum(len(ds) for _, ds in splits)
    return write_table(rows(), total, options.columns(text=image is None, pair=pair), options)


def _splits(data: Any) -> list[tuple[str, Any]]:
    """The DatasetDict's (graft split, dataset): train first; others left out with a warning."""
    named = {name: split_of(name) for name in data}
    if "train" not in named.values():
        raise GraftError(f"{WHAT}: the DatasetDict has no train split (its splits: {', '.join(data) or 'none'}); "
                         "name the training split train")  # fmt: skip
    left_out = [f"{name} ({len(data[name])} rows)" for name, split in named.items() if split not in KEPT]
    if left_out:
        first = next(name for name, split in named.items() if split not in KEPT)
        warnings.warn(f"{WHAT}: split(s) {', '.join(left_out)} of the DatasetDict are not used for training or "
                      f"validation; evaluate the trained run on one with graft.evaluate(run, data=ds[{first!r}])",
                      stacklevel=6)  # fmt: skip
    return [(split, data[name]) for want in KEPT for name, split in named.items() if split == want]


def _item_column(ds: Any, options: DataOptions) -> tuple[str | None, str | None]:
    """(image column, None) or (None, text column): named by the options, else found by name."""
    if options.path_column is not None or options.modality == "image":
        return _column(ds, options.path_column, IMAGE_COLUMNS, "image", "path_column"), None
    if options.text_column is not None or options.modality == "text":
        return None, _column(ds, options.text_column, TEXT_COLUMNS, "text", "text_column")
    found = next((c for c in IMAGE_COLUMNS + TEXT_COLUMNS if c in ds.column_names), None)
    if found is None:
        raise GraftError(f"{WHAT}: the dataset has no image or text column (looked for "
                         f"{', '.join(IMAGE_COLUMNS + TEXT_COLUMNS)}; its columns: {', '.join(ds.column_names)}); "
                         "name it with path_column= (images) or text_column= (texts)")  # fmt: skip
    return (found, None) if found in IMAGE_COLUMNS else (None, found)


def _column(ds: Any, given: str | None, defaults: tuple[str, ...], kind: str, argument: str) -> str:
    names = ds.column_names
    if given is not None and given in names:
        return given
    found = next((c for c in defaults if c in names), None) if given is None else None
    if found is None:
        looked = repr(given) if given is not None else ", ".join(defaults)
        raise GraftError(f"{WHAT}: the dataset has no {kind} column {looked} (its columns: {', '.join(names)}); "
                         f"name it with {argument}=")  # fmt: skip
    return found


def _label_reader(feature: Any, column: str) -> Callable[[Any, str], tuple[str, Any]]:
    """A function from one stored label to (task, value for materialize.Row), from the column's feature."""
    import datasets

    # datasets 4+ has List (Sequence makes one) and LargeList; 2.x and 3.x have Sequence only
    lists = tuple(getattr(datasets, kind) for kind in LIST_FEATURES if hasattr(datasets, kind))
    scalars = (datasets.ClassLabel, datasets.Value)
    if isinstance(feature, lists) and isinstance(feature.feature, scalars):
        name = _namer(feature.feature, column)
        if name is not None:
            return lambda ids, where: ("multi-label", tuple(name(i, where) for i in _present(ids, where)))
    elif isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
        return lambda value, where: ("regression", float(_present(value, where)))
    elif isinstance(feature, scalars):
        name = _namer(feature, column)
        if name is not None:
            return lambda value, where: ("single-label", name(_present(value, where), where))
    raise GraftError(f"{WHAT}: the label column {column!r} holds {feature}; graft reads a ClassLabel, ints or "
                     "strings (classes), floats (regression), or a list of them (multi-label)")  # fmt: skip


def _namer(feature: Any, column: str) -> Callable[[Any, str], str] | None:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        names = feature.names

        def class_name(value: int, where: str) -> str:
            if not 0 <= value < len(names):  # -1: the ClassLabel's "no label" (a test split's)
                raise GraftError(f"{WHAT}: {where} has label {value} in column {column!r}, not one of its "
                                 f"{len(names)} ClassLabel names; label it or remove the row")  # fmt: skip
            return names[value]

        return class_name
    if "string" in feature.dtype or feature.dtype == "bool" or "int" in feature.dtype:
        return lambda value, where: str(value)
    return None


def _present(value: Any, where: str) -> Any:
    if value is None:
        raise GraftError(f"{WHAT}: {where} has no label (None); label it or remove the row")
    return value


def _image(stored: dict | None, where: str) -> Path | Encoded:
    """An Image feature's stored {bytes, path}: the file when it exists, else the bytes."""
    if not stored or (stored.get("bytes") is None and stored.get("path") is None):
        raise GraftError(f"{WHAT}: {where} has no image; remove the row")
    path = stored.get("path")
    if path and Path(path).is_absolute() and Path(path).is_file():
        return Path(path)
    data = stored.get("bytes")
    if data is None:
        raise GraftError(f"{WHAT}: {where}'s image is the path {path}, which does not exist here and has no "
                         "stored bytes; load the dataset where its files are, or embed them (datasets' embed_storage)")  # fmt: skip
    return Encoded(data, _suffix(data, path))


def _suffix(data: bytes, path: str | None) -> str:
    """The file extension of encoded image bytes, read from their header (a PNG stored as 'x.jpg' stays a PNG)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = img.format
    except (OSError, UnidentifiedImageError):  # written anyway: `graft check` names it unreadable
        return Path(path).suffix.lower() if path and Path(path).suffix else ".img"
    extensions = [ext for ext, name in Image.registered_extensions().items() if name == kind]
    return {"JPEG": ".jpg", "TIFF": ".tif"}.get(kind, extensions[0] if extensions else ".img")


def _path(value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise GraftError(f"{WHAT}: {where}'s path is {_shown(value)}; an image column holds images (an Image "
                         "feature) or paths: for pixel arrays, ds.cast_column(name, datasets.Image())")  # fmt: skip
    path = Path(value).resolve()  # relative to where the user is, as a DataFrame's
    if not path.is_file():
        raise GraftError(f"{WHAT}: {where}'s image {value} does not exist (looked at {path})")
    return path


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GraftError(f"{WHAT}: {where}'s text is {_shown(value)}; give every row a text")
    return value


def _shown(value: Any) -> str:
    """A cell in an error: itself when short, else its type and its start (an array column's row is long)."""
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__} ({text[:40]}...)"
