"""TrainState: everything about a run's progress that a checkpoint carries besides tensors (JSON-able)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from graft.runs.best import is_better, ranking


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    stage: int = 0  # index of the strategy stage in effect (which groups train, in the optimizer)
    batch_in_epoch: int = 0  # batches of the current epoch already trained (a mid-epoch checkpoint)
    epoch_loss_sum: float = 0.0  # running sums of that partial epoch, so its mean loss comes out the same
    epoch_seen: int = 0
    epoch_loss_shares: list[float] = field(default_factory=list)  # torchrun: each rank's part of that sum
    best_metric: float | None = None
    best_epoch: int | None = None
    best_checkpoint: str | None = None  # checkpoint folder of the best epoch
    top_k: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "metric", "epoch"}], best first
    bad_epochs: int = 0  # early stopping: epochs since the monitored metric last improved by min_delta
    stop_reason: str | None = None  # "early stopping" once patience ran out
    nonfinite: int = 0  # batches whose loss was NaN/Inf (skipped within --skip-nonfinite)
    history: list[dict[str, float]] = field(default_factory=list)  # one record per completed epoch

    def record(self, epoch: int) -> dict[str, float]:
        """The history row of `epoch` (0: the solved head, before any fine-tuning epoch)."""
        return next(r for r in self.history if r["epoch"] == epoch)

    def update_best(self, record: dict[str, float], monitor: str, mode: str) -> bool:
        """Judge the epoch just completed (`record`, already appended to history); True if it is the new best.

        The rule (NaN never wins; a tie in the metric goes to the lower validation loss) is
        runs/best.py's `ranking`.
        """
        value = record[monitor]
        if math.isnan(value):
            return False
        if self.best_metric is None:
            better = True
        else:
            best = self.record(self.best_epoch)
            better = ranking(value, record["val_loss"], monitor, mode) > ranking(
                self.best_metric, best["val_loss"], monitor, mode
            )
        if better:
            self.best_metric, self.best_epoch = value, record["epoch"]
        return better

    def count_patience(self, value: float, previous_best: float | None, mode: str, min_delta: float) -> None:
        """Early stopping's counter: reset when `value` beats the best before it by more than min_delta."""
        improved = previous_best is None or (
            not math.isnan(value)
            and is_better(value, previous_best + (min_delta if mode == "max" else -min_delta), mode)
        )
        self.bad_epochs = 0 if improved else self.bad_epochs + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
