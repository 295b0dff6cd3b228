"""TrainState: the progress of a run that a checkpoint must carry besides tensors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one record per completed epoch

    def update_best(self, value: float, mode: str) -> bool:
        """Record `value` of the monitored metric for the epoch just completed; True if it is a new best."""
        better = self.best_metric is None or (
            value > self.best_metric if mode == "max" else value < self.best_metric
        )
        if better:
            self.best_metric, self.best_epoch = value, self.epoch
        return better

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(**data)


def monitor_mode(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"
