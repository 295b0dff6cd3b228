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

import csv
import io
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from graft.config import Config, apply_task_defaults
from graft.data.folders import IGNORED_DIR_NAMES, IMAGE_EXTENSIONS, Folders, is_image_name  # noqa: F401  (IMAGE_EXTENSIONS: re-exported)
from graft.data.label_kind import column_hint, indicator_cell, indicator_columns, interpret, join_labels
from graft.data.label_kind import label_column as label_column_of
from graft.data.names import WHY, control_character, refuse_in_path
from graft.data.text_tables import TextColumns, TextSample, find_text_files, is_text_data, read_table
from graft.errors import GraftError
from graft.tasks import SingleLabel, Task, create_task

SPLIT_DIR_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
CSV_SUFFIXES = (".csv", ".tsv")


Label = int | tuple[int, ...] | float  # single-label: a class index; multi-label: indices; regression: a number


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
    task: Task = field(default_factory=SingleLabel)  # what is predicted (graft/tasks/)
    task_reason: str = ""  # why --task auto chose it, for the run header
    separator: str = ";"  # multi-label cells join labels with it

    def counts(self, split: str) -> dict[str, int]:
        """Samples per class (multi-label: per label present; regression: all under the target's name)."""
        samples = getattr(self, split)
        if self.task.name == "regression":
            return {self.classes[0]: len(samples)}
        per_label = Counter(i for s in samples for i in (s.label if isinstance(s.label, tuple) else (s.label,)))
        return {name: per_label.get(i, 0) for i, name in enumerate(self.classes)}

    def targets(self, split: str) -> torch.Tensor:
        """The training targets of a split's samples, in order (graft/tasks/ `Task.targets`)."""
        return self.task.targets([s.label for s in getattr(self, split)])

    def label_text(self, label: Label) -> str:
        """A sample's label as a table cell (split.csv): the class, the joined labels, the number."""
        if self.task.name == "regression":
            return repr(float(label))
        if isinstance(label, tuple):
            return join_labels([self.classes[i] for i in label], self.separator)
        return self.classes[label]


def discover(
    path: Path,
    val: Path | None = None,
    val_split: float = 0.2,
    seed: int = 0,
    modality: str = "auto",
    columns: TextColumns = TextColumns(),
    task: str = "auto",
    path_column: str = "path",
    regression_loss: str = "mse",
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
                       columns.separator, val_split, seed, regression_loss, path)  # fmt: skip


def _build_spec(
    where: str, train_rows: list[tuple], val_rows: list[tuple], description: str, warnings: list[str],
    modality: str, task: str, label_name: str, separator: str, val_split: float, seed: int,
    regression_loss: str, path: Path,
) -> DataSpec:  # fmt: skip
    """The spec from (item, label cell) rows: the task read from the labels, the items made samples, the
    split made when no validation rows were given."""
    kind = interpret([r[-1] for r in train_rows], [r[-1] for r in val_rows], task, where, label_name, separator)
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
        raise GraftError(f"{where}: nothing to validate on ({what}); add a val/ folder or file, or --val DIR_OR_CSV")
    spec_task = create_task(kind.task, classes, [s.label for s in train], loss=regression_loss)
    return DataSpec(classes, train, val_samples, description, warnings, modality, spec_task, kind.reason,
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


def split_of(name: str) -> str | None:
    return next((split for split, names in SPLIT_DIR_NAMES.items() if name.lower() in names), None)


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
