"""Which epoch is best: one rule for training (TrainState.update_best), the top-k checkpoints kept on disk
(training/checkpoints.py) and what `graft runs` reports from metrics.csv (runs/status.py).

Larger `ranking` is better: the monitored metric first (its sign by mode), then, on a tie, the lower
validation loss, which small validation sets make decisive (a tie in accuracy goes to the epoch that is
more sure of its right answers, so an under-trained first epoch never wins one by coming first). NaN
never ranks above a number: a diverged epoch must not become "best" forever. Equal rankings keep the
earlier epoch.
"""

from __future__ import annotations

import math

LOWER_IS_BETTER = ("val_mae", "val_rmse")  # errors, like losses, go down


def resolve_mode(metric: str, mode: str = "auto") -> str:
    return (
        mode if mode != "auto" else ("min" if metric.endswith("loss") or metric in LOWER_IS_BETTER else "max")
    )


def is_better(value: float, reference: float, mode: str) -> bool:
    return value > reference if mode == "max" else value < reference


def ranking(value: float | None, val_loss: float | None, metric: str, mode: str) -> tuple[float, float]:
    """Sort key of one epoch (larger is better): (the metric signed by mode, minus its validation loss)."""
    if value is None or math.isnan(value):
        return (-math.inf, -math.inf)
    loss = math.inf if val_loss is None or math.isnan(val_loss) else val_loss
    return (value if mode == "max" else -value, 0.0 if metric == "val_loss" else -loss)
