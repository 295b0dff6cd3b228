"""A dataset object as a table discovery reads: the one writer of the files behind `graft.train(Dataset)`.

Rows come in index order (data/torch_datasets.py, data/hf_datasets.py). Texts and files that already
exist are cells of a CSV in a temporary folder of its own, as a DataFrame's are (data/in_memory.py): the
run's split.csv keeps them, so the CSV is read once. Images held in memory are written as files, once, into
the cache (data/cache_dir.py):

    <cache>/datasets/<fingerprint>/data.csv              path,label,split: image paths relative to it
    <cache>/datasets/<fingerprint>/images/000123.png     sample 123: pixels as lossless PNG, or the
                                                         stored bytes of an encoded image, as they are

The fingerprint is the SHA-256 of what the folder holds (every file's bytes and the CSV), so the same data
always lands in the same folder and different data never does. Computing it needs the samples, so a
second call with the same data reads and encodes them again (one pass, never two reads of the user's
dataset), then keeps the folder already there: the same paths, sizes and modification times, which is what
the frozen-feature cache keys on (data/feature_cache.py), and no second copy on disk. The folder is built
under a hidden temporary name and renamed into place complete: an interrupted write is never reused, a
concurrent writer of the same data loses the rename and uses the winner's folder.

The run's split.csv then names these files: resume, eval and the report read them, not the object. They
live in the cache: deleting datasets/ after training keeps the bundle usable, but not `graft resume`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from graft.data.cache_dir import default_cache_dir
from graft.data.label_kind import SEPARATOR
from graft.data.names import WHY, control_character
from graft.errors import GraftError
from graft.progress import track

FORMAT = 1  # in the fingerprint: a change to the folder's layout gets new folders
DATA_CSV = "data.csv"
READING = "data   reading the dataset"  # the step's name on its bar, aligned as the other steps'
PNG_LEVEL = 1  # zlib level 1: 4.5x faster than PIL's default 6 on 224 px photos, files 18% bigger (lossless)
# The column discovery reads a task's labels from when the run names none (data/label_kind.py FALLBACK_COLUMNS)
LABEL_COLUMNS = {"single-label": "label", "multi-label": "labels", "regression": "target"}


@dataclass(frozen=True)
class DataOptions:
    """The run settings that say how a dataset object is read and written (None: not given)."""

    path_column: str | None = None  # the image column to read, and the CSV's path column ("path")
    text_column: str | None = None  # the same for texts ("text")
    label_column: str | None = None  # None: label, labels or target, by task (LABEL_COLUMNS)
    pair_column: str | None = None  # a pair task's second text
    separator: str = SEPARATOR
    modality: str = "auto"  # which column an HF dataset with both an image and a text column is read by
    cache_dir: Path | None = None  # None: data/cache_dir.py's root
    quiet: bool = False
    label_columns: bool = False  # the run names 0/1 label columns (a table's; a dataset object has none)

    def columns(self, text: bool, pair: str | None = None) -> tuple[str, str | None, str | None]:
        """The CSV's (item, label, pair) columns, named as the run's config will read them."""
        item = (self.text_column or "text") if text else (self.path_column or "path")
        return item, self.label_column, pair

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()


@dataclass(frozen=True)
class Encoded:
    """An image file's bytes (a PNG, a JPEG, ...), written as they are."""

    data: bytes
    suffix: str  # ".jpg"


@dataclass(frozen=True)
class Row:
    """One sample: `item` is an existing image file, a text, pixels to write or encoded bytes to write;
    `label` is a class name, the label names of a multi-label sample, or a number."""

    item: Path | str | Image.Image | Encoded
    label: str | tuple[str, ...] | float
    task: str  # what the label is: "single-label", "multi-label" or "regression"
    split: str = ""  # "train", "val", or "" (discovery holds some out)
    pair: str | None = None  # a pair task's second text


@dataclass(frozen=True)
class Table:
    """Where the CSV is, and the task its labels are (the caller hands it to the config)."""

    path: Path
    task: str


def write_table(
    rows: Iterable[Row], total: int, columns: Sequence[str | None], options: DataOptions, what: str = "data"
) -> Table:
    """The CSV of `rows` (`total` of them, for the progress bar); `columns` names the item, the label (None:
    by task, `LABEL_COLUMNS`) and the pair column (None: no pairs), as `DataOptions.columns` gives them.
    `what` names the data in errors ("data: item 3 ...")."""
    item_column, label_column, pair_column = columns
    separator = options.separator
    staging: Staging | None = None
    cells: list[list[str]] = []
    task = None
    try:
        # The bar is graft/progress.py's: a terminal, a notebook, one line when long and piped, none quiet
        for index, row in enumerate(track(rows, READING, total, "samples", quiet=options.quiet)):
            if task is None:
                task = row.task
            elif row.task != task:
                raise GraftError(f"{what}: item {index}'s label is {row.task} data, item 0's {task}; "
                                 "give every item the same kind of label")  # fmt: skip
            if isinstance(row.item, (Image.Image, Encoded)):
                staging = staging or Staging(options.cache / "datasets")
                item = staging.add(index, total, row.item)
            else:
                item = str(row.item)
            label = _label_cell(row, index, what, separator)
            cells.append([item, label, row.split, *([row.pair or ""] if pair_column else [])])
        if task is None:
            raise GraftError(f"{what} is empty; give it at least 2 samples per class")
        header = [item_column, label_column or LABEL_COLUMNS[task], "split", *filter(None, [pair_column])]
        if staging is None:
            out = Path(tempfile.mkdtemp(prefix="graft-data-")) / DATA_CSV  # read once, by discovery
            _write_csv(out, header, cells)
            return Table(out, task)
        return Table(staging.commit(header, cells), task)
    finally:
        if staging is not None:
            staging.discard()


class Staging:
    """A hidden folder beside the cache's dataset folders that the images are written into, renamed to its
    fingerprint when complete."""

    def __init__(self, root: Path):
        self.root = root
        prefix = f".tmp-{socket.gethostname()}-"
        _remove_abandoned(root, prefix)
        self.folder = root / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        (self.folder / "images").mkdir(parents=True)
        self.digest = hashlib.sha256(f"graft datasets {FORMAT}\n".encode())

    def add(self, index: int, total: int, image: Image.Image | Encoded) -> str:
        """Writes sample `index` and returns its cell (relative to the CSV)."""
        if isinstance(image, Encoded):
            data, suffix = image.data, image.suffix
        else:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
            data, suffix = buffer.getvalue(), ".png"
        name = f"images/{index:0{max(6, len(str(total - 1)))}d}{suffix}"
        (self.folder / name).write_bytes(data)
        self.digest.update(f"{name}\n{len(data)}\n".encode())
        self.digest.update(data)
        return name

    def commit(self, header: list[str], cells: list[list[str]]) -> Path:
        """The folder under its fingerprint (this one, or the same data's already there); its CSV's path."""
        _write_csv(self.folder / DATA_CSV, header, cells)
        self.digest.update((self.folder / DATA_CSV).read_bytes())
        final = self.root / self.digest.hexdigest()[:32]
        if not (final / DATA_CSV).is_file():
            try:
                self.folder.rename(final)
            except OSError:  # another process renamed the same data into place first
                if not (final / DATA_CSV).is_file():
                    raise
        return final / DATA_CSV

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)  # gone already when it was renamed into place


def _remove_abandoned(root: Path, prefix: str) -> None:
    """Staging folders of this host's processes that died writing them (killed, a power cut)."""
    if not root.is_dir():
        return
    for folder in root.glob(f"{prefix}*"):
        pid = folder.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _label_cell(row: Row, index: int, what: str, separator: str) -> str:
    if row.task == "regression":
        if not math.isfinite(row.label):
            raise GraftError(f"{what}: item {index}'s label is {row.label}; regression needs a finite number")
        return repr(float(row.label))
    names = row.label if isinstance(row.label, tuple) else (row.label,)
    for name in names:
        char = control_character(name)
        if char is not None or not name.strip():
            why = f"contains the control character {char!r} ({WHY})" if char else "is empty"
            raise GraftError(f"{what}: item {index}'s label {name!r} {why}; rename the class")
        if row.task == "multi-label" and separator in name:
            raise GraftError(f"{what}: item {index}'s label {name!r} contains {separator!r}, which joins "
                             "multi-label cells; rename it or pass label_separator= another character")  # fmt: skip
    return separator.join(names) if row.task == "multi-label" else names[0]


def _write_csv(path: Path, header: list[str], cells: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(cells)
