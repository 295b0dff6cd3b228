"""Folders that are replaced whole: a reader sees the old one or the new one, never half of either.

The bundle (runs/NAME/model) and the evaluation report (runs/NAME/report) are written into a hidden
sibling, then swapped in by two renames; a crash between them leaves the new folder under its temporary
name and the old one under `.NAME.old`, both complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def staging_folder(out: Path) -> Path:
    """An empty hidden sibling of `out` to write the new contents into."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def replace_folder(staged: Path, out: Path) -> Path:
    """Swap `staged` in as `out`, dropping the old `out`."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staged.rename(out)
        shutil.rmtree(old)
    else:
        staged.rename(out)
    return out
