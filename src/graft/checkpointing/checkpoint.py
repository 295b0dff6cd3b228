"""Checkpoint files that survive crashes: written whole or not at all.

A checkpoint is one plain dict (model, optimizer, scheduler, scaler, epoch, step, metrics, state,
config, classes) of tensors and plain Python values, so it loads with torch.load(weights_only=True)
and no pickled code is ever executed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from graft.errors import GraftError


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over `path`.

    os.replace is atomic on POSIX and Windows: a reader (or a crash) sees the old file or the new one,
    never half of one.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_link(src: Path, dst: Path) -> None:
    """Make `dst` the same file as `src` (a hard link: no copy, no extra disk) atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GraftError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling raises many types; all mean "unusable file"
        raise GraftError(f"cannot load checkpoint {path}: {str(err).splitlines()[0]}") from None


def _fsync_dir(directory: Path) -> None:
    # Persist the rename itself; without this a power loss can forget it on some file systems.
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
