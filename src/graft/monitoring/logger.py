"""One `log(metrics, step)` call fanned out to every sink (CSV, TensorBoard).

Records come in two kinds: step records ({"train_loss", "lr"} every `log.every_n_steps` optimizer steps)
and epoch records (they carry an "epoch" key). `step` is always the optimizer step, so TensorBoard plots
train and validation curves on one axis.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from graft.config import LogConfig

# TensorBoard tags in the seed notes' vocabulary: Loss/train vs Loss/val in one "Loss" section.
TB_TAGS = {
    "train_loss": "Loss/train",
    "val_loss": "Loss/val",
    "val_acc": "Accuracy/val",
    "lr": "LR/group0",
    "epoch_time": "Time/epoch_seconds",
    "samples_per_s": "Throughput/train_samples_per_s",
}


class Sink(Protocol):
    def log(self, metrics: Mapping[str, float], step: int) -> None: ...
    def close(self) -> None: ...


class MetricLogger:
    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for sink in self.sinks:
            sink.log(metrics, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class CSVSink:
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


class TensorBoardSink:
    def __init__(self, log_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: on resume, TensorBoard hides events from step `purge_step` on that the crashed
        # process logged after its last checkpoint, so the curves continue instead of doubling back.
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        is_epoch = "epoch" in metrics
        for key, value in metrics.items():
            if key in ("epoch", "step"):
                continue
            # An epoch's mean train loss is another series than the per-step loss plotted as Loss/train.
            tag = (
                "Loss/train_epoch_mean"
                if is_epoch and key == "train_loss"
                else TB_TAGS.get(key, f"Other/{key}")
            )
            self.writer.add_scalar(tag, value, step)
        if is_epoch:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def create_logger(cfg: LogConfig, run_dir: Path, purge_step: int | None = None) -> MetricLogger:
    sinks: list[Sink] = []
    if "csv" in cfg.sinks:
        sinks.append(CSVSink(run_dir / "metrics.csv"))
    if "tensorboard" in cfg.sinks:
        sinks.append(TensorBoardSink(run_dir / "tb", purge_step))
    return MetricLogger(sinks)


def rewrite_csv(path: Path, history: list[dict[str, float]]) -> None:
    """metrics.csv exactly as `history` says (atomically): the rows of a checkpoint's epochs, no others."""
    if not path.exists() and not history:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        if history:
            writer = csv.DictWriter(f, fieldnames=list(history[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: _fmt(v) for k, v in row.items()} for row in history)
    tmp.replace(path)


def _fmt(value: float) -> str | float:
    return f"{value:.6g}" if isinstance(value, float) else value
