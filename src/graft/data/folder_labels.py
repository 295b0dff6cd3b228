"""Multi-label image folders: a file that sits under several class folders carries all of those labels.

    DATA/sea/beach.jpg      DATA/sunset/beach.jpg  (a symlink, a hard link, or a copy)
    -> one sample, beach.jpg, labelled sea;sunset

The same file is found without reading it when it is one file (a symlink or hard link: the same inode).
Copies are found by content (MD5 of the bytes): with `--task multi-label` every file is hashed; under
`--task auto` only files whose name and size repeat across class folders are (copies keep both, and this
keeps discovery from reading every image of a large single-label tree). A file under one folder only has
that one label; one with no label cannot be written in this layout (use a CSV).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path

from graft.data.label_kind import join_labels


def merge_copies(
    rows: list[tuple[Path, str]], every_file: bool, separator: str
) -> tuple[list[tuple[Path, str]], int]:
    """`rows` of (file, class folder name) with every file once, labelled with all the class folders it
    (or its copy) is in, labels joined by `separator`; and how many samples have more than one label.
    `every_file`: hash every file (multi-label asked for); else only name-and-size repeats (auto)."""
    if not rows:
        return rows, 0
    groups: dict[object, list[tuple[Path, str]]] = defaultdict(list)
    candidates = _repeated_name_and_size(rows) if not every_file else None
    for path, label in rows:
        groups[_identity(path, every_file or path in candidates)].append((path, label))
    merged, several = [], 0
    for members in groups.values():
        labels = sorted({label for _, label in members})
        several += len(labels) > 1
        # The file itself stands for its links (its path is what split.csv and the report show).
        merged.append(
            (
                min((path for path, _ in members), key=lambda p: (p.is_symlink(), str(p))),
                join_labels(labels, separator),
            )
        )
    if not several:
        return rows, 0
    return sorted(merged), several


def _identity(path: Path, by_content: bool) -> object:
    if by_content:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    stat = os.stat(path)  # follows symlinks: a link and its target are one file
    return (stat.st_dev, stat.st_ino)


def _repeated_name_and_size(rows: list[tuple[Path, str]]) -> set[Path]:
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for path, label in rows:
        seen[(path.name, path.stat().st_size)].add(label)
    return {path for path, _ in rows if len(seen[(path.name, path.stat().st_size)]) > 1}
