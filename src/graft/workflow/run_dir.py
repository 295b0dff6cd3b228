"""The run folder: its default name, the check that it may become a new run, its creation under the run
lock, and its split.csv.

Nothing is written before training has checked everything that can fail on user input (workflow/train.py).
A folder whose run stopped before its first checkpoint (killed while probing, say) holds nothing to resume:
it may become a new run, and is cleared when the new one starts (`open_run_dir`).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from graft.config import Config
from graft.data.discover import DataSpec
from graft.errors import GraftError
from graft.runs.folder import LOCK, WANDB, RunFolder
from graft.runs.lock import RunLock
from graft.runs.split import ImageRow, Row, TextRow, write_rows
from graft.runs.store import CheckpointStore


def default_run_dir(cfg: Config) -> Path:
    data_name = Path(cfg.data.path).stem or "data"
    model_name = Path(cfg.model.name).name.replace(":", "-")
    return Path("runs") / f"{data_name}-{model_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_run_dir(run_dir: Path) -> Path:
    """Check that `run_dir` can become a new run: absent, empty, or a run that never wrote a checkpoint
    (and is not running); creatable. Creates nothing."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise GraftError(f"--out {run_dir} is a file, not a folder")
        if not _empty(run_dir) and not restartable(run_dir):
            what = "a run" if RunFolder(run_dir).config.exists() else "files"
            raise GraftError(f"{run_dir} already holds {what}; choose another --out (nothing was changed)")
        if restartable(run_dir):  # fail now, not after the probe, if its process is still preparing it
            RunLock(run_dir).acquire().release()
    parent = run_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GraftError(f"cannot create {run_dir}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GraftError(f"cannot create {run_dir}: no write permission in {parent}; choose another --out")
    return run_dir


def restartable(run_dir: Path) -> bool:
    """A run folder graft made whose run never wrote a checkpoint: only graft's files, no step-* folder.
    graft made it if it has checkpoints/ and split.csv (open_run_dir's first two writes)."""
    folder = RunFolder(run_dir)
    made_by_graft = folder.checkpoints.is_dir() and folder.split.is_file()
    return made_by_graft and not folder.foreign() and not CheckpointStore(folder.checkpoints).names()


def _empty(run_dir: Path) -> bool:
    """Nothing in it, or only what a creation that failed at once leaves: the lock and an empty checkpoints/."""
    folder = RunFolder(run_dir)
    for path in run_dir.iterdir():
        if path.name == LOCK or (path == folder.checkpoints and path.is_dir() and not any(path.iterdir())):
            continue
        return False
    return True


def open_run_dir(run_dir: Path) -> tuple[RunLock, bool]:
    """Create `run_dir` and take its lock for the run's life, checking again under the lock that it may
    become a new run (two `graft train --out SAME` started together: one wins, the other is told). A run
    that never checkpointed is cleared first. Returns the lock and whether that happened."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GraftError(
            f"cannot create run directory {run_dir}: {err.strerror}; choose another --out"
        ) from None
    lock = RunLock(run_dir).acquire()
    try:
        restarted = restartable(run_dir)
        if not restarted and not _empty(run_dir):
            raise GraftError(f"{run_dir} already holds a run (started meanwhile); choose another --out")
        for path in run_dir.iterdir() if restarted else []:  # W&B's offline files stay: they may be unsynced
            if path.name not in (LOCK, WANDB):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except BaseException:
        lock.release()
        raise
    return lock, restarted


def write_split(spec: DataSpec, path: Path) -> None:
    """The exact train/val samples of this run, as split.csv (its format: runs/split.py)."""
    cell = spec.label_text
    rows: list[Row] = []
    for split, samples in (("train", spec.train), ("val", spec.val)):
        if spec.modality == "text":
            rows += [TextRow(s.text, cell(s.label), split, s.pair) for s in samples]
        else:
            rows += [ImageRow(s.path, cell(s.label), split) for s in samples]
    write_rows(path, rows, text=spec.modality == "text")
