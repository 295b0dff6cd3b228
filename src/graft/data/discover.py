"""Find the samples, classes and train/val split in what the user points graft at.

Accepted layouts (first match wins):
  DATA/train/<class>/*.png  [+ DATA/val/<class>/...]   explicit split (names matched case-insensitively:
                                                       train|training, val|valid|validation; test/ is left out)
  DATA/<class>/*.png                                   split here with `val_split`, stratified and seeded
  DATA.csv with columns path,label[,split]             paths relative to the CSV's folder

No image is decoded here: this is the cheap pass that fixes the class list and the split, so that the
same split comes back on every run (and on resume) from the same files and seed. Hidden files (._x.jpg)
and __MACOSX folders are skipped. Symlinked folders are followed inside DATA only, each folder at most once
(a link that loops, leaves DATA or leads to a class folder is skipped with a warning, see `_Folders`);
symlinked files, and the files a CSV lists, may be anywhere. Class names and paths with control characters
(a newline in a folder name) are refused (data/names.py): split.csv must read back as written.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from graft.config import Config, apply_task_defaults
from graft.data.names import WHY, control_character, refuse_in_path, shown
from graft.data.text_tables import TextColumns, TextSample, find_text_files, is_text_data, read_table
from graft.errors import GraftError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
SPLIT_DIR_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
IGNORED_DIR_NAMES = ("__MACOSX",)  # resource forks that macOS zips carry along
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
) -> DataSpec:
    """Resolve DATA (+ optional explicit validation data) into classes and a train/val split.

    `task`: "image", "text", or "auto" (text when DATA is a text table, see data/text_tables.py)."""
    path = Path(path)
    if not path.exists():
        raise GraftError(f"data not found: {path} (expected a folder of class sub-folders or a CSV file)")
    if task == "text" or (task == "auto" and is_text_data(path, columns)):
        return _discover_text(path, None if val is None else Path(val), val_split, seed, columns)
    warnings: list[str] = []

    if path.is_file():
        rows = _read_csv(path)  # rows without a split value are training rows
        train_rows = [(p, lbl) for p, lbl, split in rows if split in ("", "train")]
        val_rows = [(p, lbl) for p, lbl, split in rows if split == "val"]
        n_test = sum(split == "test" for _, _, split in rows)
        if n_test:
            warnings.append(
                f"{n_test} row(s) of {path.name} with split=test are not used for training or validation"
            )
        description = f"CSV {path.name}"
    else:
        folders = _Folders(path, warnings)
        splits = {_split_of(d.name): d for d in folders.subfolders(path) if _split_of(d.name)}
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
            folders.class_folders(folder)  # both claimed before either is read: see _Folders
        train_rows = _scan_class_folders(train_dir, warnings, folders=folders)
        val_rows = (
            _scan_class_folders(val_dir, warnings, allow_empty_classes=True, folders=folders)
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
            [(p, lbl) for p, lbl, _ in _read_csv(val)]
            if val.is_file()
            else _scan_class_folders(val, warnings, allow_empty_classes=True)
        )
        if not val_rows:
            raise GraftError(f"validation data {val} has no images")
        description += f", validation from {val}"

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
                    TextColumns(d.text_column, d.label_column, d.text_pair_column))  # fmt: skip
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
    path: Path, val: Path | None, val_split: float, seed: int, columns: TextColumns
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


def _split_of(name: str) -> str | None:
    return next((split for split, names in SPLIT_DIR_NAMES.items() if name.lower() in names), None)


def _subfolders(root: Path) -> list[Path]:
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and d.name not in IGNORED_DIR_NAMES
    )


class _Folders:
    """The folder walk of one discovery: each folder read at most once, and never out of `root` by a link.

    Folders are identified by (st_dev, st_ino) of what they resolve to. A symlinked folder is followed only
    when it leads to a folder inside `root` that is not read anyway: a link to a folder above it is a loop
    (`ln -s .. DATA/blue/up` would read DATA again, and again), and one into (or above) a class folder would
    read its images a second time, under another label. Each link skipped is one warning that names it.
    Symlinked files are kept wherever they point, as are the files a CSV lists: only folders are walked.
    Listings are sorted, so the same folders give the same samples and warnings on every run."""

    def __init__(self, root: Path, warnings: list[str]):
        self.root = Path(root)
        self.real_root = Path(os.path.realpath(self.root))
        refuse_in_path(self.root)
        refuse_in_path(self.real_root)
        self.warnings = warnings
        self.skipped: dict[Path, str] = {}  # link -> the warning about it
        self._read: dict[tuple[int, int], Path] = {}  # a folder's (st_dev, st_ino) -> the path it is read as
        self._claimed: list[tuple[Path, Path]] = []  # (real path, path) of each class folder
        self._classes: dict[Path, list[Path]] = {}  # scanned folder -> its class folders

    def subfolders(self, folder: Path) -> list[Path]:
        """The sub-folders of `folder` (hidden and __MACOSX left out), sorted, less links that loop or
        leave the root."""
        found = []
        for entry in _entries(folder):
            if entry.name.startswith(".") or entry.name in IGNORED_DIR_NAMES or not _is_dir(entry):
                continue
            sub = Path(folder) / entry.name
            if not entry.is_symlink() or self._link_target(sub) is not None:
                found.append(sub)
        return found

    def class_folders(self, folder: Path) -> list[Path]:
        """The class folders of `folder`, claimed: a link to a folder claimed already (another class folder,
        one inside it or above it) is skipped. Real folders are claimed before links, so that a link never
        takes a real folder's images away from it."""
        if folder not in self._classes:
            chosen = []
            for sub in sorted(self.subfolders(folder), key=lambda d: (d.is_symlink(), d.name)):
                refuse_in_path(sub)
                real = Path(os.path.realpath(sub))
                if sub.is_symlink():
                    refuse_in_path(real)
                    if self._overlaps_a_class(sub, real):
                        continue
                self._claimed.append((real, sub))
                identity = _identity(sub)
                if identity is not None:
                    self._read.setdefault(identity, sub)
                chosen.append(sub)
            self._classes[folder] = sorted(chosen)
        return self._classes[folder]

    def images_under(self, folder: Path) -> list[Path]:
        """Image files anywhere below the class folder `folder` (hidden ones left out), sorted."""
        found, stack = [], [Path(folder)]
        while stack:
            current = stack.pop()
            subs = []
            for entry in _entries(current):
                if entry.name.startswith("."):
                    continue
                path = current / entry.name
                if _is_dir(entry):
                    if entry.name not in IGNORED_DIR_NAMES and self._enter(path, entry.is_symlink()):
                        subs.append(path)
                elif _is_image_name(entry.name):
                    if control_character(entry.name) is not None:  # the folders above are checked already
                        refuse_in_path(path, "file")
                    if entry.is_symlink():  # split.csv holds the resolved path
                        refuse_in_path(Path(os.path.realpath(path)), "file")
                    found.append(path)
            stack += reversed(subs)  # depth first, in sorted order
        return sorted(found)

    def _enter(self, folder: Path, is_link: bool) -> bool:
        """Whether to read `folder`, a sub-folder met below a class folder; marks it read."""
        if control_character(folder.name) is not None:
            refuse_in_path(folder)
        real = None
        if is_link:
            real = self._link_target(folder)
            if real is None:
                return False
            refuse_in_path(real)
            if self._overlaps_a_class(folder, real):
                return False
        identity = _identity(folder)
        if identity is None:
            return False  # unreadable, as os.walk skips it
        if identity in self._read:
            what = f"a symlink to {shown(real)}" if is_link else "the same folder as another"
            self._skip(folder, f"{what}, already read as {self._read[identity]}")
            return False
        self._read[identity] = folder
        return True

    def _link_target(self, link: Path) -> Path | None:
        """Where the symlinked folder `link` leads; None (and a warning) when it loops or leaves the root."""
        target = Path(os.path.realpath(link))
        if not target.is_relative_to(self.real_root):
            self._skip(
                link,
                f"a symlink to {shown(target)}, outside the data folder {self.root}; folder links are followed "
                "only inside it (copy the images in, or list them in a CSV with path,label columns)",
            )
            return None
        if Path(os.path.realpath(link.parent)).is_relative_to(target):
            self._skip(
                link, f"a symlink to {shown(target)}, which contains it: a loop (each folder is read once)"
            )
            return None
        return target

    def _overlaps_a_class(self, link: Path, real: Path) -> bool:
        """Whether the symlinked folder `link` leads into or above a class folder (warned when so)."""
        for claimed, sub in self._claimed:
            if real == claimed:
                where = "the class folder"
            elif real.is_relative_to(claimed):
                where = "a folder inside the class folder"
            elif claimed.is_relative_to(real):
                where = "a folder holding the class folder"
            else:
                continue
            self._skip(link, f"a symlink to {shown(real)}, {where} {sub}, which is read on its own")
            return True
        return False

    def _skip(self, link: Path, why: str) -> None:
        if link not in self.skipped:  # a folder is looked at twice: for split folders, then as a class
            self.skipped[link] = f"skipped {shown(link)}: {why}"
            self.warnings.append(self.skipped[link])


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:  # unreadable: skipped, as os.walk does
        return []


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _skipped_hint(warnings: list[str]) -> str:
    """'; skipped DATA/x: ...' for the first symlinked folder skipped, when too few classes are left."""
    skipped = [why for why in warnings if why.startswith("skipped ")]
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    return f"; {skipped[0]}{more}" if skipped else ""


def _nested_hint(path: Path, classes: list[str]) -> str:
    """'; did you mean DATA/animals?' when the only 'class' is a folder of class folders."""
    if len(classes) != 1 or not path.is_dir():
        return ""
    inner = [d.name for d in _subfolders(path / classes[0])] if (path / classes[0]).is_dir() else []
    return (
        f"; {classes[0]}/ has sub-folders ({', '.join(inner[:4])}): did you mean {path / classes[0]}?"
        if inner
        else ""
    )


def _scan_class_folders(
    root: Path, warnings: list[str], allow_empty_classes: bool = False, folders: _Folders | None = None
) -> list[tuple[Path, str]]:
    """(image, class name) of the class folders of `root`; `folders` is the walk of the whole data (a new
    one rooted at `root` when not given), warnings about skipped links go to `warnings`."""
    folders = folders or _Folders(root, warnings)
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
        p for p in root.iterdir() if p.is_file() and not p.name.startswith(".") and _is_image_name(p.name)
    ]
    if loose:
        warnings.append(
            f"{len(loose)} image(s) directly in {root} are not in a class folder and were ignored"
        )
    return rows


def _read_csv(path: Path) -> list[tuple[Path, str, str]]:
    """Rows of (absolute image path, label, split or '') from a path,label[,split] CSV/TSV."""
    if path.suffix.lower() not in CSV_SUFFIXES:
        raise GraftError(f"{path}: expected a folder or a .csv/.tsv file with path,label columns")
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
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise GraftError(
            f"{path} needs columns path,label; missing {', '.join(missing)} "
            f"(found: {', '.join(reader.fieldnames or []) or 'no header'})"
        )
    rows, absent, seen, previous_end = [], [], {}, reader.line_num
    for row in reader:
        line_no, previous_end = previous_end + 1, reader.line_num  # the row's first line in the file
        rel, label = (row[columns["path"]] or "").strip(), (row[columns["label"]] or "").strip()
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
        split = _split_of(split) or split
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
