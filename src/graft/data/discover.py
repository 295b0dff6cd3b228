"""Find the samples, classes and train/val split in what the user points graft at.

Accepted layouts (first match wins):
  DATA/train/<class>/*.png  [+ DATA/val/<class>/...]   explicit split (names matched case-insensitively:
                                                       train|training, val|valid|validation; test/ is left out)
  DATA/<class>/*.png                                   split here with `val_split`, stratified and seeded
  DATA.csv with columns path,label[,split]             paths relative to the CSV's folder

No image is decoded here: this is the cheap pass that fixes the class list and the split, so that the
same split comes back on every run (and on resume) from the same files and seed. Hidden files (._x.jpg)
and __MACOSX folders are skipped. Symlinked folders are followed inside DATA only, each folder at most once
(a link that loops, leaves DATA or leads to a class folder is skipped with a warning, see `Folders`);
symlinked files, and the files a CSV lists, may be anywhere. Class names and paths with control characters
(a newline in a folder name) are refused (data/names.py): split.csv must read back as written.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from graft.config import Config, apply_task_defaults
from graft.data.folder_labels import merge_copies
from graft.data.folders import (  # noqa: F401  (re-exported)
    IGNORED_DIR_NAMES,
    IMAGE_EXTENSIONS,
    SPLIT_DIR_NAMES,
    Folders,
    is_image_name,
    split_of,
)
from graft.data.image_tables import CSV_SUFFIXES, read_image_csv  # noqa: F401  (re-exported)
from graft.data.label_kind import interpret, join_labels
from graft.data.text_tables import TextColumns, TextSample, find_text_files, is_text_data, read_table
from graft.errors import GraftError

if TYPE_CHECKING:  # graft/tasks/ imports torch; discovery stays stdlib-only (graft runs, the CLI's start-up)
    from graft.tasks import Task

# single-label: a class index; multi-label: a tuple of indices; regression: a number
Label = int | tuple[int, ...] | float


@dataclass(frozen=True)
class Sample:
    path: Path
    label: Label

    @property
    def key(self) -> str:
        return str(self.path)


@dataclass
class DataSpec:
    """Everything the rest of graft needs to know about a dataset before reading a pixel."""

    classes: list[str]  # the head's outputs: class names (multi-label: label names; regression: the target's)
    train: list[Sample]
    val: list[Sample]
    description: str  # how the split was found, for the user: "train/ and val/ folders", ...
    warnings: list[str] = field(default_factory=list)
    modality: str = "image"  # "image" (samples are Sample: files) or "text" (TextSample: strings)
    task: Task = field(
        default_factory=lambda: _create_task("single-label")
    )  # what is predicted (graft/tasks/)
    task_reason: str = ""  # why --task auto chose it, for the run header
    separator: str = ";"  # multi-label cells join labels with it

    def counts(self, split: str) -> dict[str, int]:
        """Samples per class (multi-label: per label present; regression: all under the target's name)."""
        samples = getattr(self, split)
        if self.task.name == "regression":
            return {self.classes[0]: len(samples)}
        per_label = Counter(i for s in samples for i in class_indices(s.label))
        return {name: per_label.get(i, 0) for i, name in enumerate(self.classes)}

    def label_text(self, label: Label) -> str:
        """A sample's label as a table cell (split.csv): the class, the joined labels, the number."""
        if self.task.name == "regression":
            return repr(float(label))
        if isinstance(label, tuple):
            return join_labels([self.classes[i] for i in label], self.separator)
        return self.classes[label]


def class_indices(label: Label) -> tuple[int, ...]:
    """The classes a (single- or multi-label) sample's label holds, as indices into `DataSpec.classes`."""
    return tuple(label) if isinstance(label, tuple) else (label,)


def discover(
    path: Path,
    val: Path | None = None,
    val_split: float = 0.2,
    seed: int = 0,
    modality: str = "auto",
    columns: TextColumns = TextColumns(),
    task: str = "auto",
    path_column: str = "path",
    regression_loss: str = "huber",
) -> DataSpec:
    """Resolve DATA (+ optional explicit validation data) into classes and a train/val split.

    `modality`: "image", "text", or "auto" (text when DATA is a text table, see data/text_tables.py).
    An image CSV's columns are `path_column` and `columns.label` (split.csv's are path and label).
    `task`: "auto" reads it from the labels (data/label_kind.py), or a task name (a resume passes the one
    its run was trained for)."""
    path = Path(path)
    if not path.exists():
        raise GraftError(f"data not found: {path} (expected a folder of class sub-folders or a CSV file)")
    if columns.label_columns:  # 0/1 columns are label sets, also where no row has two labels on
        if task not in ("auto", "multi-label"):
            raise GraftError(f"--label-columns gives every sample a set of labels: that is --task multi-label, "
                             f"not {task}; drop one of them")  # fmt: skip
        task = "multi-label"
    if task == "multi-label" and not columns.empty_labels:  # an empty cell is then an empty label set
        columns = replace(columns, empty_labels=True)
    if modality == "text" or (modality == "auto" and is_text_data(path, columns)):
        return _discover_text(path, None if val is None else Path(val), val_split, seed, columns, task,
                              regression_loss)  # fmt: skip
    warnings: list[str] = []
    reason = ""  # why the folders made it multi-label

    if path.is_file():
        rows, label_name = read_image_csv(path, path_column, columns)  # rows without a split: training rows
        train_rows = [(p, lbl) for p, lbl, split in rows if split in ("", "train")]
        val_rows = [(p, lbl) for p, lbl, split in rows if split == "val"]
        n_test = sum(split == "test" for _, _, split in rows)
        if n_test:
            warnings.append(
                f"{n_test} row(s) of {path.name} with split=test are not used for training or validation"
            )
        description = f"CSV {path.name}"
    else:
        label_name = "label"
        folders = Folders(path, warnings)
        splits = {split_of(d.name): d for d in folders.subfolders(path) if split_of(d.name)}
        if "val" in splits and "train" not in splits:
            raise GraftError(
                f"{path} has a {splits['val'].name}/ folder but no train/ folder; "
                "put the training images in train/<class>/ beside it"
            )
        if "test" in splits and "train" in splits:
            warnings.append(
                f"{splits['test']} is not used for training or validation: keep it for a final evaluation"
            )
        train_dir, val_dir = splits.get("train", path), splits.get("val")
        for folder in (train_dir, val_dir) if val_dir else (train_dir,):
            folders.class_folders(folder)  # both claimed before either is read: see Folders
        train_rows = scan_class_folders(train_dir, warnings, folders=folders)
        val_rows = (
            scan_class_folders(val_dir, warnings, allow_empty_classes=True, folders=folders)
            if val_dir
            else []
        )
        description = (
            f"folders {train_dir.name}/ and {val_dir.name}/" if val_dir else f"class folders in {path}"
        )
        if task in ("auto", "multi-label"):  # a file under several class folders: multi-label
            train_rows, several = merge_copies(train_rows, task == "multi-label", columns.separator)
            val_rows, several_val = merge_copies(val_rows, task == "multi-label", columns.separator)
            if several or several_val:
                task = "multi-label"
                reason = f"{several + several_val} files are under several class folders (links or copies)"

    if val is not None:  # an explicit --val wins over anything found inside DATA
        val = Path(val)
        if not val.exists():
            raise GraftError(f"validation data not found: {val}")
        val_rows = (
            [(p, lbl) for p, lbl, _ in read_image_csv(val, path_column, columns)[0]]
            if val.is_file()
            else scan_class_folders(val, warnings, allow_empty_classes=True)
        )
        if not val_rows:
            raise GraftError(f"validation data {val} has no images")
        description += f", validation from {val}"

    return _build_spec(str(path), train_rows, val_rows, description, warnings, "image", task, label_name,
                       columns.separator, val_split, seed, regression_loss, path, reason)  # fmt: skip


def _build_spec(
    where: str, train_rows: list[tuple], val_rows: list[tuple], description: str, warnings: list[str],
    modality: str, task: str, label_name: str, separator: str, val_split: float, seed: int,
    regression_loss: str, path: Path, reason: str = "",
) -> DataSpec:  # fmt: skip
    """The spec from (item, label cell) rows: the task read from the labels, the items made samples, the
    split made when no validation rows were given."""
    kind = interpret(
        [r[-1] for r in train_rows], [r[-1] for r in val_rows], task, where, label_name, separator
    )
    warnings += kind.warnings
    make = (lambda item, cell: Sample(item, kind.encode(cell))) if modality == "image" else (
        lambda item, cell: TextSample(item[0], kind.encode(cell), item[1]))  # fmt: skip
    classes = kind.classes
    if kind.task == "single-label" and len(classes) < 2:
        raise GraftError(
            f"{where}: found {len(classes)} class(es) {classes}; classification needs at least 2"
            + (_nested_hint(path, classes) if modality == "image" else "")
            + _skipped_hint(warnings)
        )
    if kind.task == "multi-label" and len(classes) < 2:
        raise GraftError(f"{where}: found {len(classes)} label(s) {classes}; multi-label needs at least 2")
    train = [make(item, cell) for item, cell in train_rows]
    if val_rows:
        val_samples = [make(item, cell) for item, cell in val_rows]
        if modality == "image":
            shared = sorted({s.path for s in train} & {s.path for s in val_samples})
            if shared:
                raise GraftError(
                    f"{len(shared)} file(s) are both training and validation images, e.g. {shared[0]}; "
                    "a model validated on its own training images looks better than it is"
                )
        # Texts shared with the training data are reported by the data check (data/leaks.py), which
        # also finds them after normalising case and punctuation.
    elif kind.task == "single-label":
        train, val_samples = stratified_split(train, val_split, seed)
        description += f", {val_split:.0%} held out for validation (stratified, seed {seed})"
    else:  # a label set or a number per sample: nothing to stratify on
        train, val_samples = random_split(train, val_split, seed)
        description += f", {val_split:.0%} held out for validation (seed {seed})"
    if not val_samples:
        what = "a class needs 2 images before one can be held out" if modality == "image" else "add rows"
        raise GraftError(
            f"{where}: nothing to validate on ({what}); add a val/ folder or file, or --val DIR_OR_CSV"
        )
    spec_task = _create_task(kind.task, classes, [s.label for s in train], loss=regression_loss)
    return DataSpec(classes, train, val_samples, description, warnings, modality, spec_task, reason or kind.reason,
                    separator)  # fmt: skip


def random_split(samples: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded split of round(n * fraction) samples to val (at least 1 of 2 or more), in sorted order first."""
    ordered = sorted(samples, key=lambda s: s.key)
    random.Random(seed).shuffle(ordered)
    n_val = min(len(ordered) - 1, max(1, round(len(ordered) * fraction))) if len(ordered) >= 2 else 0
    return ordered[n_val:], ordered[:n_val]


def discover_config(cfg: Config) -> DataSpec:
    """`discover` with the data settings of a run's config; fills the task's defaults into `cfg`."""
    if cfg.data.path is None:
        raise GraftError("no training data given: pass DATA, a folder of class sub-folders or a CSV")
    d = cfg.data
    columns = TextColumns(d.text_column, d.label_column, d.text_pair_column,
                          tuple(d.label_columns) if d.label_columns else None, d.label_separator)  # fmt: skip
    spec = discover(d.path, d.val, d.val_split, cfg.train.seed, d.modality, columns, d.task, d.path_column,
                    cfg.train.regression_loss)  # fmt: skip
    apply_task_defaults(cfg, spec.modality, spec.task.name)
    return spec


def stratified_split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Per-class seeded split: round(n * fraction) of each class to val, clamped to [1, n - 1] for n >= 2,
    so every class keeps at least one training and one validation image (a single image stays in train).

    Done per class by hand rather than with sklearn's train_test_split, which refuses classes with one
    sample and val sets smaller than the class count, both common in the small datasets graft is for.
    Samples are sorted first so the split depends on the files, not on directory listing order.
    """
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: (s.label, s.key)):
        by_class[s.label].append(s)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        group = by_class[label]
        rng.shuffle(group)
        n_val = min(len(group) - 1, max(1, round(len(group) * fraction))) if len(group) >= 2 else 0
        val += group[:n_val]
        train += group[n_val:]
    return train, val


def _discover_text(
    path: Path, val: Path | None, val_split: float, seed: int, columns: TextColumns, task: str,
    regression_loss: str,
) -> DataSpec:  # fmt: skip
    train_file, val_file, description = find_text_files(path, val)
    if val_file is not None and not val_file.exists():
        raise GraftError(f"validation data not found: {val_file}")
    rows, label_name = read_table(train_file, columns)
    warnings = []
    n_test = sum(split == "test" for *_, split in rows)
    if n_test:
        warnings.append(
            f"{n_test} row(s) of {train_file.name} with split=test are not used for training or validation"
        )
    train_rows = [r for r in rows if r[3] in ("", "train")]
    val_rows = [r for r in rows if r[3] == "val"]
    if val_file is not None:
        val_rows = read_table(val_file, columns)[0]
        description += f", validation from {val_file.name}" if val is not None else ""
    as_items = lambda rs: [((text, pair), label) for text, label, pair, _ in rs]  # noqa: E731
    return _build_spec(str(train_file), as_items(train_rows), as_items(val_rows), description, warnings, "text",
                       task, label_name, columns.separator, val_split, seed, regression_loss, train_file)  # fmt: skip


def subfolders(root: Path) -> list[Path]:
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and d.name not in IGNORED_DIR_NAMES
    )


def _skipped_hint(warnings: list[str]) -> str:
    """'; skipped DATA/x: ...' for the first symlinked folder skipped, when too few classes are left."""
    skipped = [why for why in warnings if why.startswith("skipped ")]
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    return f"; {skipped[0]}{more}" if skipped else ""


def _nested_hint(path: Path, classes: list[str]) -> str:
    """'; did you mean DATA/animals?' when the only 'class' is a folder of class folders."""
    if len(classes) != 1 or not path.is_dir():
        return ""
    inner = [d.name for d in subfolders(path / classes[0])] if (path / classes[0]).is_dir() else []
    return (
        f"; {classes[0]}/ has sub-folders ({', '.join(inner[:4])}): did you mean {path / classes[0]}?"
        if inner
        else ""
    )


def scan_class_folders(
    root: Path, warnings: list[str], allow_empty_classes: bool = False, folders: Folders | None = None
) -> list[tuple[Path, str]]:
    """(image, class name) of the class folders of `root`; `folders` is the walk of the whole data (a new
    one rooted at `root` when not given), warnings about skipped links go to `warnings`."""
    folders = folders or Folders(root, warnings)
    class_dirs = folders.class_folders(root)
    if not class_dirs:
        raise GraftError(
            f"{root} has no class sub-folders; put each class's images in its own folder, "
            f"e.g. {root}/cat/1.jpg, {root}/dog/2.jpg" + _skipped_hint(list(folders.skipped.values()))
        )
    rows: list[tuple[Path, str]] = []
    for class_dir in class_dirs:
        images = folders.images_under(class_dir)
        if not images and not allow_empty_classes:
            skipped = [why for link, why in folders.skipped.items() if link.is_relative_to(class_dir)]
            raise GraftError(
                f"class folder {class_dir} has no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...); "
                "add images or remove the folder" + "".join(f"; {why}" for why in skipped[:2])
            )
        rows += [(p, class_dir.name) for p in images]
    loose = [
        p for p in root.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_name(p.name)
    ]
    if loose:
        warnings.append(
            f"{len(loose)} image(s) directly in {root} are not in a class folder and were ignored"
        )
    return rows


def _create_task(*args, **kwargs) -> Task:
    from graft.tasks import create_task  # imported when a spec is made: torch loads with the first task

    return create_task(*args, **kwargs)
