"""Every name inside a run folder, spelled once.

    runs/NAME/
      config.yaml      the resolved config (config.save_config; `graft runs` and the report read it through
                       runs/records.py, `graft resume` through the checkpoint's copy)
      status.json      running/finished/stopped/failed, pid, host (runs/status.py)
      split.csv        the exact train/val split the run trained on (runs/split.py)
      metrics.csv      one row per epoch record (written by monitoring/csv_sink.py, read by runs/records.py)
      advice.json      how the strategy was chosen (probe, options, plan), for runs whose strategy was
                       measured: the probe ran, or --strategy auto (runs/records.py)
      stages.json      the stages training planned, as the report lists them: the describe() line and one
                       line per stage; written for every run, also on resume (runs/records.py). Its own
                       file, not a key of advice.json: that one exists only for measured strategies, and
                       the report shows all its keys as what was measured
      lr_find.png      the LR range test's plot (--lr auto)
      tb/              TensorBoard event files
      wandb/           W&B's offline files and graft-run-id (a resumed run continues the same W&B run)
      checkpoints/     the checkpoint store (runs/store.py)
      model/           the bundle: graft.json + weights + MANIFEST.json (runs/manifest.py)
      .lock            held by the one process writing the run (runs/lock.py): its pid and host
      report/          `graft eval`'s report on the validation split

Each file's format has one owner module, named above; the others read it through that module. The
bundle's graft.json is read here too (`find_bundle`, `read_bundle_meta`), by every route. Standard library
only (and graft.errors), no torch: runs/locate.py and the ONNX predictor stay torch-free.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.errors import GraftError
from graft.runs.manifest import MANIFEST, verify_folder

CONFIG = "config.yaml"
STATUS = "status.json"
SPLIT = "split.csv"
METRICS = "metrics.csv"
ADVICE = "advice.json"
STAGES = "stages.json"
LR_FIND = "lr_find.png"
TENSORBOARD = "tb"
WANDB = "wandb"
WANDB_RUN_ID = "graft-run-id"  # inside wandb/
CHECKPOINTS = "checkpoints"
BUNDLE = "model"
LOCK = ".lock"
REPORT = "report"
BUNDLE_META = "graft.json"  # inside the bundle folder, wherever the bundle lives


# Everything graft writes at the top of a run folder (hidden temporaries aside): what a restart may clear.
OWN = {CONFIG, STATUS, SPLIT, METRICS, ADVICE, STAGES, LR_FIND, TENSORBOARD, WANDB, CHECKPOINTS, BUNDLE, LOCK}


@dataclass(frozen=True)
class RunFolder:
    """The paths of the run folder `root` (nothing is checked or created)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def status(self) -> Path:
        return self.root / STATUS

    @property
    def split(self) -> Path:
        return self.root / SPLIT

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def advice(self) -> Path:
        return self.root / ADVICE

    @property
    def stages(self) -> Path:
        return self.root / STAGES

    @property
    def lr_find(self) -> Path:
        return self.root / LR_FIND

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def wandb(self) -> Path:
        return self.root / WANDB

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def bundle(self) -> Path:
        return self.root / BUNDLE

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def bundle_meta(self) -> Path:
        return self.bundle / BUNDLE_META

    def foreign(self) -> list[Path]:
        """What in the folder graft did not write: anything but its own names, report folders (report,
        report-DATA) and its own temporaries (.NAME.tmp, .NAME.tmp-PID, .NAME.old)."""
        return sorted(p for p in self.root.iterdir() if not _own(p.name))


def _own(name: str) -> bool:
    temporary = re.fullmatch(r"\.(.+)\.(tmp|old)(-\d+)?", name)
    base = temporary.group(1) if temporary else name
    return base in OWN or base == REPORT or base.startswith(REPORT + "-")


def find_bundle(path: Path) -> Path | None:
    """The bundle folder `path` names: a run folder's model/, or `path` itself when it holds graft.json."""
    if RunFolder(path).bundle_meta.is_file():
        return RunFolder(path).bundle
    if (path / BUNDLE_META).is_file():
        return path
    return None


def read_bundle_meta(bundle: Path) -> dict[str, Any]:
    """The bundle folder's graft.json, or a one-line error naming the file."""
    try:
        return json.loads((bundle / BUNDLE_META).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GraftError(f"cannot read {bundle / BUNDLE_META}: {err}") from None


def verify_bundle(bundle: Path) -> None:
    """A one-line error if the bundle's files do not match its MANIFEST.json (a bit flip, a truncated copy,
    a file missing). Bundles written before graft kept a manifest are taken as they are."""
    if not (bundle / MANIFEST).is_file():
        return
    problem = verify_folder(bundle)
    if problem:
        raise GraftError(
            f"bundle {bundle} is damaged: {problem}; copy it again from where it came from (nothing was loaded)"
        )
