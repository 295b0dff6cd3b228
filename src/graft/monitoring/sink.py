"""What a monitoring sink is (CSV, TensorBoard, W&B) and the records it is handed.

Every record kind has a no-op default in `Sink`; a sink implements what its tool shows. The plot tags are
spelled here once, so every tool groups the same curves the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Tags in the seed notes' vocabulary (Loss/train vs Loss/val in one "Loss" section); W&B uses the same
# names, so its panels group the same way.
STEP_TAGS = {"train_loss": "Loss/train", "samples_per_s": "Throughput/train_samples_per_s"}
EPOCH_TAGS = {
    "train_loss": "Loss/train_epoch_mean",  # another series than the per-step loss
    "val_loss": "Loss/val",
    "val_acc": "Accuracy/val",
    "val_map": "mAP/val",
    "val_f1": "F1/val_micro",
    "val_macro_f1": "F1/val_macro",
    "val_subset_acc": "Accuracy/val_subset",
    "val_mae": "Error/val_mae",
    "val_rmse": "Error/val_rmse",
    "val_r2": "R2/val",
    "val_spearman": "Spearman/val",
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

    where: str | None = None  # the file or folder it writes, for the one-line error when it cannot

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...
    def histograms(self, histograms: dict[str, Histogram], step: int) -> None: ...
    def images(self, tag: str, items: list[Captioned], step: int) -> None: ...
    def text(self, tag: str, markdown: str, step: int) -> None: ...
    def graph(self, model: Any, example: Any) -> None: ...
    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
