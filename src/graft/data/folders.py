"""The folder walk of data discovery: each folder read at most once, never out of the data folder by a
link, in sorted order, without decoding anything (os.scandir; stdlib only, so discovery stays fast).
"""

from __future__ import annotations

import os
from pathlib import Path

from graft.data.names import control_character, refuse_in_path, shown
from graft.errors import GraftError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
IGNORED_DIR_NAMES = ("__MACOSX",)  # resource forks that macOS zips carry along


class Folders:
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
        for entry in entries(folder):
            if entry.name.startswith(".") or entry.name in IGNORED_DIR_NAMES or not is_dir(entry):
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
            self._refuse_outside_classes(folder)
            chosen = []
            for sub in sorted(self.subfolders(folder), key=lambda d: (d.is_symlink(), d.name)):
                refuse_in_path(sub)
                real = Path(os.path.realpath(sub))
                if sub.is_symlink():
                    refuse_in_path(real)
                    if self._overlaps_a_class(sub, real):
                        continue
                self._claimed.append((real, sub))
                identity = folder_identity(sub)
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
            for entry in entries(current):
                if entry.name.startswith("."):
                    continue
                path = current / entry.name
                if is_dir(entry):
                    if entry.name not in IGNORED_DIR_NAMES and self._enter(path, entry.is_symlink()):
                        subs.append(path)
                elif is_image_name(entry.name):
                    if control_character(entry.name) is not None:  # the folders above are checked already
                        refuse_in_path(path, "file")
                    if entry.is_symlink():  # split.csv holds the resolved path
                        refuse_in_path(Path(os.path.realpath(path)), "file")
                    found.append(path)
            stack += reversed(subs)  # depth first, in sorted order
        return sorted(found)

    def _refuse_outside_classes(self, folder: Path) -> None:
        """A class folder that is a link out of the data folder is an error, not a warning: skipping it would
        train without that class."""
        for entry in entries(folder):
            if entry.is_symlink() and is_dir(entry) and not entry.name.startswith("."):
                target = Path(os.path.realpath(Path(folder) / entry.name))
                if not target.is_relative_to(self.real_root):
                    raise GraftError(
                        f"class folder {shown(Path(folder) / entry.name)} is a symlink to {shown(target)}, outside "
                        f"the data folder {self.root}: graft follows folder links only inside it, and leaving the "
                        "class out would train without it; list its images in a CSV with path,label columns (a "
                        "CSV may point anywhere), or copy them in"
                    )

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
        identity = folder_identity(folder)
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


def entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:  # unreadable: skipped, as os.walk does
        return []


def is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def folder_identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


SPLIT_DIR_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}


def split_of(name: str) -> str | None:
    return next((split for split, names in SPLIT_DIR_NAMES.items() if name.lower() in names), None)
