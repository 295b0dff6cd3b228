"""What a task is: one object per kind of prediction, so modality (image or text) and task stay separate axes.

A `Task` says what the head outputs, how a sample's label becomes a training target, the loss, the
validation metrics and which one "best" means, how the outputs are decoded for a prediction, what the
bundle stores to decode them again, and Hugging Face's `problem_type` for the same head. Three exist:

  single-label   one class per sample: softmax, cross-entropy, accuracy          (tasks/single.py)
  multi-label    any set of classes: one sigmoid per label, BCE, mAP, F1 at tuned
                 per-label thresholds                                            (tasks/multi.py)
  regression     a number: targets standardised for training, MSE or Huber,
                 MAE / RMSE / R² / Spearman in the target's units                (tasks/regression.py)

Sample labels (data/discover.py) are an int class index, a tuple of class indices, or a float; the
task turns a list of them into one target tensor (`targets`), which the datasets hand to the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from graft.config.task_names import (  # noqa: F401  (re-exported)
    PERCENT_METRICS,
    SHOWN_METRICS,
    TASK_NAMES,
    format_metric,
    format_metrics,
    task_name,
)


@dataclass
class Decoded:
    """One sample's prediction, as `graft predict` prints it and `--json` writes it."""

    value: Any  # the class name, the list of labels above their thresholds, or the number
    scores: dict[str, float]  # per class: probability (softmax or sigmoid); regression: {}


class Task:
    """The interface; see the module docstring. Instances are small and JSON-describable (`to_meta`)."""

    name: ClassVar[str]
    problem_type: ClassVar[str]  # Hugging Face's config.problem_type for this head
    monitor: ClassVar[str]  # the validation metric that picks the best epoch by default
    metrics_shown: ClassVar[tuple[str, ...]]  # the record's metrics, most important first (console, runs)

    def outputs(self, classes: Sequence[str]) -> int:
        """How many numbers the head outputs."""
        return len(classes)

    def targets(self, labels: Sequence) -> torch.Tensor:
        """The training targets of samples with these labels (int, tuple of ints, or float each)."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None,
             label_smoothing: float = 0.0) -> torch.Tensor:  # fmt: skip
        """The training loss (a mean over the batch), on float32 logits."""
        raise NotImplementedError

    def sample_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N,) the plain validation loss per sample (no weights, no smoothing)."""
        raise NotImplementedError

    def predictions(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(preds, confidence) per sample, for the monitor's worst-examples views."""
        raise NotImplementedError

    def wrong(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the samples counted as mistakes (the worst ones are shown)."""
        return (preds != targets).reshape(len(preds), -1).any(1)

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """The epoch's validation metrics ("val_loss" and the task's own), from all validation outputs."""
        raise NotImplementedError

    def caption(self, pred: torch.Tensor, confidence: torch.Tensor, target: torch.Tensor,
                classes: Sequence[str]) -> tuple[str, str, str]:  # fmt: skip
        """(predicted, its score, true) of one sample, as words for a gallery or table."""
        raise NotImplementedError

    def target_words(self, target: torch.Tensor, classes: Sequence[str]) -> str:
        """One training target (`targets`' row) as words: the class, the labels, the number."""
        return self.caption(target, torch.tensor(1.0), target, classes)[2]

    def decode(self, logits: torch.Tensor, classes: Sequence[str]) -> list[Decoded]:
        """Predictions from the bundle's outputs (which include the bundle's calibration)."""
        raise NotImplementedError

    def to_meta(self) -> dict[str, Any]:
        """What the bundle's graft.json stores of the task: enough for `from_meta` to decode."""
        return {"name": self.name, "problem_type": self.problem_type}
