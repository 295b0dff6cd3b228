"""The run folder: its default name, the check that it may become a new run, and its split.csv.

Nothing here writes before training has checked everything that can fail on user input (workflow/train.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from graft.config import Config
from graft.data.discover import DataSpec
from graft.errors import GraftError
from graft.runs.folder import RunFolder
from graft.runs.split import ImageRow, Row, TextRow, write_rows


def default_run_dir(cfg: Config) -> Path:
    data_name = Path(cfg.data.path).stem or "data"
    model_name = Path(cfg.model.name).name.replace(":", "-")
    return Path("runs") / f"{data_name}-{model_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_run_dir(run_dir: Path) -> Path:
    """Check that `run_dir` can become a new run: absent or empty, and creatable. Creates nothing."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise GraftError(f"--out {run_dir} is a file, not a folder")
        if any(run_dir.iterdir()):
            what = "a run" if RunFolder(run_dir).config.exists() else "files"
            raise GraftError(f"{run_dir} already holds {what}; choose another --out (nothing was changed)")
    parent = run_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GraftError(f"cannot create {run_dir}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GraftError(f"cannot create {run_dir}: no write permission in {parent}; choose another --out")
    return run_dir


def write_split(spec: DataSpec, path: Path) -> None:
    """The exact train/val samples of this run, as split.csv (its format: runs/split.py)."""
    names = spec.classes
    rows: list[Row] = []
    for split, samples in (("train", spec.train), ("val", spec.val)):
        if spec.task == "text":
            rows += [TextRow(s.text, names[s.label], split, s.pair) for s in samples]
        else:
            rows += [ImageRow(s.path, names[s.label], split) for s in samples]
    write_rows(path, rows, text=spec.task == "text")
