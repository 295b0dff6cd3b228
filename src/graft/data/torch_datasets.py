"""A map-style dataset (`len(ds)`, `ds[i] -> (sample, label)`: a torch Dataset, or any sequence of such
pairs) as rows for data/materialize.py.

  sample   a PIL image, a numpy array (HxW or HxWxC; uint8, or float in [0, 1]) or a torch tensor (CxHxW or
           HxWxC; uint8, or float in [0, 1]): an image; a str: a text
  label    an int (a class index: named by the dataset's `.classes` when it has them, else the number), a str
           (a class name), a float (regression), or a multi-hot vector (0/1 per label, named by `.classes`)
           or a list or tuple of label names (multi-label)

What the dataset must guarantee: graft reads it once, in index order, before training, and trains on what
it returned, so each item must be the plain sample: un-normalized and un-augmented (graft applies the
model's own normalization and its augmentations, per epoch). Item 0 is read a second time to check that:
an item that changes between two reads is augmented at random, and is refused. A float image outside
[0, 1] is refused as normalized. Resume, eval and the report then read the files written, not the object.

A torchvision `ImageFolder`/`DatasetFolder` (or a `Subset` of one, as `random_split` makes) already knows
its files: their paths and its `.classes` are used as they are, nothing is read or written, and the
dataset's `transform` is not applied (graft's preprocessing is).

torch itself is never imported here: a torch object exists only when its caller imported torch, so
`sys.modules` tells whether there is one.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from graft.data.decode import array_to_image, tensor_values, to_rgb
from graft.data.folders import is_image_name
from graft.data.materialize import DataOptions, Row, Table, write_table
from graft.errors import GraftError

WHAT = "data"  # errors start with the argument's name, as config errors start with a field's
NORMALIZED = (
    "already normalized? graft applies the model's own normalization and augmentations: give it the "
    "un-normalized, un-augmented sample (drop Normalize and random transforms), uint8 0-255 or float 0-1"
)


def is_iterable_only(data: Any) -> bool:
    """A torch IterableDataset: no length, no index, so no order to read once and split by."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(data, torch.utils.data.IterableDataset)


def is_map_dataset(data: Any) -> bool:
    """A torch map-style Dataset, or any other object with a length whose first item is a pair."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        return True
    indexed = hasattr(data, "__len__") and hasattr(data, "__getitem__")
    if not indexed or isinstance(data, (str, bytes, dict)):
        return False
    try:
        first = data[0] if len(data) else None
    except (KeyError, IndexError, TypeError):  # a mapping, or an object indexed by something else
        return False
    return isinstance(first, (tuple, list)) and len(first) == 2


def torch_table(data: Any, options: DataOptions) -> Table:
    """The table of `data`, a map-style dataset (`is_map_dataset`)."""
    files = _files_of(data)
    if files is not None:
        paths, classes = files
        rows = (Row(Path(p).resolve(), classes[i], "single-label") for p, i in paths)
        return write_table(rows, len(paths), options.columns(text=False), options)
    n = len(data)
    if n == 0:
        raise GraftError(f"{WHAT}: the dataset is empty (len 0); give it at least 2 samples per class")
    labels = Labels(_class_names(data))
    first = _row(data[0], 0, labels)
    again = _row(data[0], 0, labels)
    if not _same(first, again):
        raise GraftError(
            f"{WHAT}: item 0 of the dataset changed between two reads (random augmentation?); graft reads each "
            "item once and augments it itself per epoch: give it un-augmented samples (no random transforms)"
        )
    text = isinstance(first.item, str)

    def rows() -> Iterator[Row]:
        yield first
        for i in range(1, n):
            row = _row(data[i], i, labels)
            if isinstance(row.item, str) != text:
                raise GraftError(f"{WHAT}: item {i} is {'a text' if not text else 'an image'}, item 0 "
                                 f"{'a text' if text else 'an image'}; give one kind of sample")  # fmt: skip
            yield row

    return write_table(rows(), n, options.columns(text), options)


def _files_of(data: Any) -> tuple[list[tuple[str, int]], Sequence[str]] | None:
    """(path, class index) of each item and the class names, for a torchvision DatasetFolder (ImageFolder)
    or a Subset of one whose files are images and whose labels are its class indices; else None."""
    indices: list[int] | None = None
    while hasattr(data, "dataset") and hasattr(data, "indices") and not hasattr(data, "samples"):  # a Subset
        outer = [int(i) for i in data.indices]
        indices = outer if indices is None else [outer[i] for i in indices]
        data = data.dataset
    samples, classes = getattr(data, "samples", None), getattr(data, "classes", None)
    if not isinstance(samples, list) or not _names(classes) or getattr(data, "target_transform", None):
        return None  # a target_transform makes the labels something else than the class indices
    if not all(isinstance(s, tuple) and len(s) == 2 and is_image_name(str(s[0])) for s in samples):
        return None  # a DatasetFolder of other files (.npy, ...): its loader knows how to read them
    if getattr(data, "transform", None) is not None:
        warnings.warn(f"{WHAT}: the {type(data).__name__}'s transform is not applied: graft reads its image "
                      "files and applies the model's own preprocessing and augmentations", stacklevel=6)  # fmt: skip
    chosen = samples if indices is None else [samples[i] for i in indices]
    return [(path, int(index)) for path, index in chosen], classes


def _class_names(data: Any) -> Sequence[str] | None:
    """The dataset's `.classes` (through Subsets), when it is a list of names."""
    while True:
        classes = getattr(data, "classes", None)
        if _names(classes):
            return classes
        if not hasattr(data, "dataset"):
            return None
        data = data.dataset


def _names(classes: Any) -> bool:
    return isinstance(classes, (list, tuple)) and bool(classes) and all(isinstance(c, str) for c in classes)


def _row(item: Any, index: int, labels: Labels) -> Row:
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise GraftError(f"{WHAT}: item {index} of the dataset is {_kind(item)}; graft reads (sample, label) "
                         "pairs: return (image or text, label) from __getitem__")  # fmt: skip
    sample, label = item
    task, value = labels.read(label, index)
    if isinstance(sample, str):
        if not sample.strip():
            raise GraftError(f"{WHAT}: item {index}'s text is empty; remove it or fill it in")
        return Row(sample, value, task)
    return Row(_image(sample, index), value, task)


def _image(sample: Any, index: int) -> Image.Image:
    what = f"{WHAT}: item {index}'s sample"
    if isinstance(sample, Image.Image):
        return to_rgb(sample)
    if _is_tensor(sample):
        pixels = tensor_values(sample)
        return array_to_image(pixels, True, f"{what} (a tensor of shape {tuple(pixels.shape)})", NORMALIZED)
    if isinstance(sample, np.ndarray):
        return array_to_image(sample, False, f"{what} (an array of shape {sample.shape})", NORMALIZED)
    raise GraftError(f"{what} is {_kind(sample)}; graft reads a PIL image, a numpy array or a torch tensor "
                     "(an image), or a str (a text)")  # fmt: skip


class Labels:
    """Each item's label as (task, value for materialize.Row), named by the dataset's classes."""

    def __init__(self, classes: Sequence[str] | None):
        self.classes = classes
        self.width: int | None = None  # a multi-hot vector's length, fixed by the first one

    def read(self, label: Any, index: int) -> tuple[str, str | tuple[str, ...] | float]:
        if _is_tensor(label):
            label = tensor_values(label)
        if isinstance(label, np.ndarray):
            if label.size == 1:  # a 0-d tensor, or a regression target shaped (1,)
                label = label.reshape(()).item()
            elif label.ndim == 1:
                return "multi-label", self._multi_hot(label.tolist(), index)
            else:
                raise GraftError(f"{WHAT}: item {index}'s label has shape {label.shape}; a label is a number, "
                                 "a name, or a 1-D multi-hot vector")  # fmt: skip
        if isinstance(label, (list, tuple)):
            label = [x.item() if isinstance(x, np.generic) or _is_tensor(x) else x for x in label]  # fmt: skip
            if all(isinstance(x, str) for x in label):  # [] too: a sample with no label on
                return "multi-label", tuple(label)
            return "multi-label", self._multi_hot(label, index)
        if isinstance(label, (str, np.str_)):
            return "single-label", str(label)
        if isinstance(label, (int, np.integer, np.bool_)):  # bool too: class 0 or 1
            return "single-label", self._name(int(label), index)
        if isinstance(label, (float, np.floating)):
            return "regression", float(label)
        raise GraftError(f"{WHAT}: item {index}'s label is {_kind(label)}; a label is an int (class index), a "
                         "str (class name), a float (regression), or a multi-hot vector or list of names")  # fmt: skip

    def _name(self, i: int, index: int) -> str:
        if self.classes is None:
            return str(i)
        if not 0 <= i < len(self.classes):
            raise GraftError(f"{WHAT}: item {index}'s label {i} is not a class index of the dataset's "
                             f".classes (0-{len(self.classes) - 1})")  # fmt: skip
        return self.classes[i]

    def _multi_hot(self, values: list, index: int) -> tuple[str, ...]:
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v in (0, 1) for v in values):
            raise GraftError(f"{WHAT}: item {index}'s label {values[:8]} is not a multi-hot vector (0 or 1 per "
                             "label); a list of class indices is given as a list of names")  # fmt: skip
        self.width = len(values) if self.width is None else self.width
        if len(values) != self.width or (self.classes is not None and len(values) != len(self.classes)):
            expected = len(self.classes) if self.classes is not None else self.width
            raise GraftError(f"{WHAT}: item {index}'s multi-hot label has {len(values)} entries, expected "
                             f"{expected} (one per label)")  # fmt: skip
        return tuple(self._name(j, index) for j, v in enumerate(values) if v == 1)


def _same(a: Row, b: Row) -> bool:
    """The same item twice (labels by repr: a NaN label is the same NaN, for the error that names it)."""
    if repr(a.label) != repr(b.label):
        return False
    if isinstance(a.item, Image.Image) and isinstance(b.item, Image.Image):
        return a.item.size == b.item.size and a.item.tobytes() == b.item.tobytes()
    return a.item == b.item


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def type_name(x: Any) -> str:
    """`x`'s type as errors name it: `dict` for builtins, `module.Qualname` for the rest."""
    kind = type(x)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _kind(x: Any) -> str:
    name = type_name(x)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
