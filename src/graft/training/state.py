"""TrainState: the progress of a run that a checkpoint must carry besides tensors."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    stage: int = 0  # index of the strategy stage in effect (which groups train, in the optimizer)
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one record per completed epoch

    def update_best(self, record: dict[str, float], monitor: str) -> bool:
        """Judge the epoch just completed (`record`, already appended to history); True if it is the new best.

        NaN never wins (a diverged epoch must not become "best" forever). On a tie in accuracy, which small
        validation sets make common, the lower validation loss wins: the more confident model.
        """
        value = record[monitor]
        if math.isnan(value):
            return False
        if self.best_metric is None:
            better = True
        elif value != self.best_metric:
            better = value > self.best_metric if monitor_mode(monitor) == "max" else value < self.best_metric
        else:
            better = (
                monitor != "val_loss" and record["val_loss"] < self.history[self.best_epoch - 1]["val_loss"]
            )
        if better:
            self.best_metric, self.best_epoch = value, record["epoch"]
        return better

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(**data)


def monitor_mode(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"
