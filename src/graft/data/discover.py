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
from dataclasses import dataclass, field
from pathlib import Path

from graft.config import Config, apply_task_defaults
from graft.data.folders import IGNORED_DIR_NAMES, IMAGE_EXTENSIONS, Folders, is_image_name  # noqa: F401  (IMAGE_EXTENSIONS: re-exported)
from graft.data.label_kind import column_hint, judge_labels
from graft.data.names import WHY, control_character, refuse_in_path
from graft.data.text_tables import TextColumns, TextSample, find_text_files, is_text_data, read_table
from graft.errors import GraftError

SPLIT_DIR_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
CSV_SUFFIXES = (".csv", ".tsv")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int

    @property
    def key(self) -> str:
        return str(self.path)


@dataclass
class DataSpec:
    """Everything the rest of graft needs to know about a dataset before reading a pixel."""

    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    description: str  # how the split was found, for the user: "train/ and val/ folders", ...
    warnings: list[str] = field(default_factory=list)
    task: str = "image"  # "image" (samples are Sample: files) or "text" (TextSample: strings)

    def counts(self, split: str) -> dict[str, int]:
        per_label = Counter(s.label for s in getattr(self, split))
        return {name: per_label.get(i, 0) for i, name in enumerate(self.classes)}


def discover(
    path: Path,
    val: Path | None = None,
    val_split: float = 0.2,
    seed: int = 0,
    task: str = "auto",
    columns: TextColumns = TextColumns(),
    labels: str = "single",
    path_column: str = "path",
) -> DataSpec:
    """Resolve DATA (+ optional explicit validation data) into classes and a train/val split.

    `task`: "image", "text", or "auto" (text when DATA is a text table, see data/text_tables.py).
    An image CSV's columns are `path_column` and `columns.label` (split.csv's are path and label).
    `labels`: "auto" refuses labels that look multi-label or numeric (data/label_kind.py), as a new run's
    data is checked; "single" takes them as classes (a resume's split.csv was judged when the run began)."""
    path = Path(path)
    if not path.exists():
        raise GraftError(f"data not found: {path} (expected a folder of class sub-folders or a CSV file)")
    if task == "text" or (task == "auto" and is_text_data(path, columns)):
        return _discover_text(path, None if val is None else Path(val), val_split, seed, columns, labels)
    warnings: list[str] = []

    if path.is_file():
        rows = read_image_csv(path, path_column, columns.label)  # rows without a split: training rows
        train_rows = [(p, lbl) for p, lbl, split in rows if split in ("", "train")]
        val_rows = [(p, lbl) for p, lbl, split in rows if split == "val"]
        n_test = sum(split == "test" for _, _, split in rows)
        if n_test:
            warnings.append(
                f"{n_test} row(s) of {path.name} with split=test are not used for training or validation"
            )
        description = f"CSV {path.name}"
    else:
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
            [(p, lbl) for p, lbl, _ in read_image_csv(val, path_column, columns.label)]
            if val.is_file()
            else scan_class_folders(val, warnings, allow_empty_classes=True)
        )
        if not val_rows:
            raise GraftError(f"validation data {val} has no images")
        description += f", validation from {val}"

    if labels == "auto":
        warnings += judge_labels([lbl for _, lbl in train_rows] + [lbl for _, lbl in val_rows], str(path))
    classes = sorted({label for _, label in train_rows})
    if len(classes) < 2:
        raise GraftError(
            f"{path}: found {len(classes)} class(es) {classes}; classification needs at least 2"
            + _nested_hint(path, classes)
            + _skipped_hint(warnings)
        )
    unknown = sorted({label for _, label in val_rows} - set(classes))
    if unknown:
        raise GraftError(
            f"validation data has classes that are not in the training data: {', '.join(unknown)}; "
            "add training images for them or remove them from validation"
        )
    index = {name: i for i, name in enumerate(classes)}
    train = [Sample(p, index[lbl]) for p, lbl in train_rows]
    if val_rows:
        val_samples = [Sample(p, index[lbl]) for p, lbl in val_rows]
        shared = sorted({s.path for s in train} & {s.path for s in val_samples})
        if shared:
            raise GraftError(
                f"{len(shared)} file(s) are both training and validation images, e.g. {shared[0]}; "
                "a model validated on its own training images looks better than it is"
            )
    else:
        train, val_samples = stratified_split(train, val_split, seed)
        description += f", {val_split:.0%} held out for validation (stratified, seed {seed})"
    if not val_samples:
        raise GraftError(
            f"{path}: nothing to validate on (a class needs 2 images before one can be held out); "
            "add images, a val/ folder, or --val DIR_OR_CSV"
        )
    return DataSpec(classes, train, val_samples, description, warnings)


def discover_config(cfg: Config) -> DataSpec:
    """`discover` with the data settings of a run's config; fills the task's defaults into `cfg`."""
    if cfg.data.path is None:
        raise GraftError("no training data given: pass DATA, a folder of class sub-folders or a CSV")
    d = cfg.data
    spec = discover(d.path, d.val, d.val_split, cfg.train.seed, d.task,
                    TextColumns(d.text_column, d.label_column, d.text_pair_column), d.labels,
                    d.path_column)  # fmt: skip
    apply_task_defaults(cfg, spec.task)
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
    path: Path, val: Path | None, val_split: float, seed: int, columns: TextColumns, labels: str = "single"
) -> DataSpec:
    train_file, val_file, description = find_text_files(path, val)
    if val_file is not None and not val_file.exists():
        raise GraftError(f"validation data not found: {val_file}")
    rows = read_table(train_file, columns)
    warnings = []
    n_test = sum(split == "test" for *_, split in rows)
    if n_test:
        warnings.append(
            f"{n_test} row(s) of {train_file.name} with split=test are not used for training or validation"
        )
    train_rows = [r for r in rows if r[3] in ("", "train")]
    val_rows = [r for r in rows if r[3] == "val"]
    if val_file is not None:
        val_rows = read_table(val_file, columns)
        description += f", validation from {val_file.name}" if val is not None else ""
    if labels == "auto":
        warnings += judge_labels([r[1] for r in train_rows] + [r[1] for r in val_rows], str(train_file))
    classes = sorted({label for _, label, _, _ in train_rows})
    if len(classes) < 2:
        raise GraftError(
            f"{train_file}: found {len(classes)} label(s) {classes}; classification needs at least 2"
        )
    only_val = sorted({label for _, label, _, _ in val_rows} - set(classes))
    if only_val:
        raise GraftError(
            f"validation labels {', '.join(map(repr, only_val))} never occur in the training data "
            f"({train_file.name}); add training rows for them or remove them from validation"
        )
    index = {name: i for i, name in enumerate(classes)}
    train = [TextSample(text, index[label], pair) for text, label, pair, _ in train_rows]
    if val_rows:
        # Texts shared with the training data are reported by the data check (data/leaks.py), which
        # also finds them after normalising case and punctuation.
        val_samples = [TextSample(text, index[label], pair) for text, label, pair, _ in val_rows]
    else:
        train, val_samples = stratified_split(train, val_split, seed)
        description += f", {val_split:.0%} held out for validation (stratified, seed {seed})"
    if not val_samples:
        raise GraftError(f"{train_file}: nothing to validate on; add rows, a val file, or --val FILE")
    return DataSpec(classes, train, val_samples, description, warnings, task="text")


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
    path: Path, path_column: str = "path", label_column: str = "label"
) -> list[tuple[Path, str, str]]:
    """Rows of (absolute image path, label, split or '') from a path,label[,split] CSV/TSV; the path and
    label columns may have other names (--path-column, --label-column), matched case-insensitively."""
    wanted = (path_column.strip().lower(), label_column.strip().lower())
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
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise GraftError(
            f"{path} needs columns {path_column},{label_column}; missing {', '.join(missing)} "
            f"(found: {', '.join(reader.fieldnames or []) or 'no header'}){column_hint(reader.fieldnames or [], image_table=True)}"
            "; graft train and graft check read other names with --path-column/--label-column"
        )
    path_key, label_key = columns[wanted[0]], columns[wanted[1]]
    rows, absent, seen, previous_end = [], [], {}, reader.line_num
    for row in reader:
        line_no, previous_end = previous_end + 1, reader.line_num  # the row's first line in the file
        rel, label = (row[path_key] or "").strip(), (row[label_key] or "").strip()
        if not rel or not label:
            raise GraftError(f"{path}:{line_no}: empty path or label")
        for what, value in (("path", rel), ("label", label)):
            char = control_character(value)
            if char is not None:
                raise GraftError(
                    f"{path}:{line_no}: the {what} {value!r} contains the control character {char!r}; "
                    f"{'rename the file' if what == 'path' else 'change the label'} ({WHY})"
                )
        split = (row[columns["split"]] or "").strip().lower() if "split" in columns else ""
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
    return rows
