"""One call per kind of record, fanned out to every sink (CSV, TensorBoard, W&B).

`monitoring/monitor.py` decides what to log and when; this module only routes records. Scalars come in
two kinds: step records (train loss, per-group LRs, throughput every `log.every_n_steps` optimizer steps)
and epoch records (they carry an "epoch" key). `step` is always the optimizer step, so train and
validation curves share one axis in every tool.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graft.config import LogConfig
from graft.files import write_atomic
from graft.runs.folder import RunFolder

# Tags in the seed notes' vocabulary (Loss/train vs Loss/val in one "Loss" section); W&B uses the same
# names, so its panels group the same way.
STEP_TAGS = {"train_loss": "Loss/train", "samples_per_s": "Throughput/train_samples_per_s"}
EPOCH_TAGS = {
    "train_loss": "Loss/train_epoch_mean",  # another series than the per-step loss
    "val_loss": "Loss/val",
    "val_acc": "Accuracy/val",
    "epoch_time": "Time/epoch_seconds",
    "samples_per_s": "Throughput/epoch_samples_per_s",
}
NOT_PLOTTED = {"epoch", "step", "wall_time", "lr"}  # epoch "lr" is the head's: LR/<group> has them all


def scalar_tags(metrics: Mapping[str, float]) -> dict[str, float]:
    """Record keys -> plot tags: `lr/<group>` -> `LR/<group>`, known keys by the tables above."""
    table = EPOCH_TAGS if "epoch" in metrics else STEP_TAGS
    tags = {}
    for key, value in metrics.items():
        if key in NOT_PLOTTED and "epoch" in metrics:
            continue
        if key.startswith("lr/"):
            tags[f"LR/{key[3:]}"] = value
        elif key not in ("epoch", "step"):
            tags[table.get(key, f"Other/{key}")] = value
    return tags


@dataclass
class Histogram:
    """A histogram computed once (torch, on the training device) and handed to every sink."""

    min: float
    max: float
    num: int
    sum: float
    sum_squares: float
    edges: np.ndarray  # len(counts) + 1
    counts: np.ndarray


@dataclass
class Captioned:
    """One image (HWC uint8) with its caption, e.g. "pred 7 (0.91) / true 1"."""

    image: np.ndarray
    caption: str


class Sink:
    """A destination. Every kind of record has a no-op default: a sink implements what its tool shows."""

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...
    def histograms(self, histograms: dict[str, Histogram], step: int) -> None: ...
    def images(self, tag: str, items: list[Captioned], step: int) -> None: ...
    def text(self, tag: str, markdown: str, step: int) -> None: ...
    def graph(self, model: Any, example: Any) -> None: ...
    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class MetricLogger:
    """The fan-out: each call goes to every sink, in order."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    def __getattr__(self, kind: str):
        if kind.startswith("_") or not hasattr(Sink, kind):
            raise AttributeError(kind)

        def fan_out(*args, **kwargs) -> None:
            for sink in self.sinks:
                getattr(sink, kind)(*args, **kwargs)

        return fan_out

    def has(self, sink_type: type) -> bool:
        return any(isinstance(s, sink_type) for s in self.sinks)


class CSVSink(Sink):
    """metrics.csv: one row per epoch record, flushed at once so a crash loses nothing logged."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None
        self._writer: csv.DictWriter | None = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if "epoch" not in metrics:
            return
        if self._writer is None:
            self._file = self.path.open("a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=list(metrics), extrasaction="ignore")
            if self.path.stat().st_size == 0:
                self._writer.writeheader()
        self._writer.writerow({k: _fmt(v) for k, v in metrics.items()})
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def create_logger(
    cfg: LogConfig, run_dir: Path, purge_step: int | None = None, config: dict | None = None
) -> MetricLogger:
    """The sinks named in `cfg.sinks`. `purge_step`: on resume, the step the checkpoint was taken after;
    TensorBoard hides what the dead process logged later. `config`: the resolved config, for W&B."""
    sinks: list[Sink] = []
    if "csv" in cfg.sinks:
        sinks.append(CSVSink(RunFolder(run_dir).metrics))
    if "tensorboard" in cfg.sinks:
        from graft.monitoring.tensorboard import TensorBoardSink

        sinks.append(TensorBoardSink(RunFolder(run_dir).tensorboard, purge_step))
    if "wandb" in cfg.sinks:
        from graft.monitoring.wandb_sink import WandbSink

        sinks.append(WandbSink(run_dir, cfg, config or {}, resumed=purge_step is not None))
    return MetricLogger(sinks)


def rewrite_csv(path: Path, history: list[dict[str, float]]) -> None:
    """metrics.csv exactly as `history` says (atomically): the rows of a checkpoint's epochs, no others."""
    if not path.exists() and not history:
        return

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            if history:
                writer = csv.DictWriter(f, fieldnames=list(history[0]), extrasaction="ignore")
                writer.writeheader()
                writer.writerows({k: _fmt(v) for k, v in row.items()} for row in history)

    write_atomic(path, write)


def _fmt(value: float) -> str | float:
    return f"{value:.6g}" if isinstance(value, float) else value
