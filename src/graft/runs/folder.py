"""Every name inside a run folder, spelled once.

    runs/NAME/
      config.yaml      the resolved config (`graft resume` and `graft runs` read it)
      status.json      running/finished/stopped/failed, pid, host (monitoring/status.py)
      split.csv        the exact train/val split the run trained on
      metrics.csv      one row per epoch record
      advice.json      how the strategy was chosen (probe, options, plan)
      lr_find.png      the LR range test's plot (--lr auto)
      tb/              TensorBoard event files
      checkpoints/     the checkpoint store (checkpointing/store.py)
      model/           the bundle: graft.json + weights
      report/          `graft eval`'s report on the validation split

Standard library only, no graft and no torch import: export/locate.py (torch- and timm-free) uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
STATUS = "status.json"
SPLIT = "split.csv"
METRICS = "metrics.csv"
ADVICE = "advice.json"
LR_FIND = "lr_find.png"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
BUNDLE = "model"
REPORT = "report"
BUNDLE_META = "graft.json"  # inside the bundle folder, wherever the bundle lives


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
    def lr_find(self) -> Path:
        return self.root / LR_FIND

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def bundle(self) -> Path:
        return self.root / BUNDLE

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def bundle_meta(self) -> Path:
        return self.bundle / BUNDLE_META
