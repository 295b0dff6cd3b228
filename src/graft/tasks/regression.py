"""Regression: one number per sample (an age, a rating, a price).

Targets are standardised with the training set's mean and standard deviation for training (a unit-scale
target suits the solved head, the LR and gradient clipping whatever the units); the loss is MSE or Huber on
that scale. Validation metrics are in the target's own units: MAE (what "best" watches), RMSE, R² and
Spearman's rank correlation. The bundle folds the scaling into the head's last layer, so the exported
model, and the same weights loaded in plain transformers (`problem_type="regression"`) or timm, output
the number itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from graft.tasks.base import Decoded, Task

LOSSES = ("mse", "huber")
HUBER_DELTA = 1.0  # on the standardised scale: errors beyond one standard deviation count linearly


@dataclass
class Regression(Task):
    mean: float = 0.0  # of the training targets: outputs are (y - mean) / std while training
    std: float = 1.0
    target_name: str = "target"
    loss_name: str = "huber"

    name = "regression"
    problem_type = "regression"
    monitor = "val_mae"
    metrics_shown = ("val_mae", "val_rmse", "val_r2", "val_loss")

    @classmethod
    def fit(
        cls, values: Sequence[float], target_name: str = "target", loss_name: str = "huber"
    ) -> Regression:
        """Scaled by the training targets (a constant target keeps std 1: the data check refuses it)."""
        t = torch.tensor(list(values), dtype=torch.float64)
        std = float(t.std()) if len(t) > 1 else 1.0
        return cls(float(t.mean()), std if math.isfinite(std) and std > 0 else 1.0, target_name, loss_name)

    def outputs(self, classes):
        return 1

    def targets(self, labels: Sequence) -> torch.Tensor:
        return ((torch.tensor(list(labels), dtype=torch.float64) - self.mean) / self.std).float()

    def raw(self, outputs: torch.Tensor) -> torch.Tensor:
        """Standardised outputs or targets back in the target's units."""
        return outputs.reshape(-1).double() * self.std + self.mean

    def loss(self, logits, targets, weights=None, label_smoothing=0.0):
        out = logits.reshape(-1)
        if self.loss_name == "huber":
            return F.huber_loss(out, targets, delta=HUBER_DELTA)
        return F.mse_loss(out, targets)

    def sample_losses(self, logits, targets):
        out = logits.reshape(-1)
        if self.loss_name == "huber":
            return F.huber_loss(out, targets, delta=HUBER_DELTA, reduction="none")
        return F.mse_loss(out, targets, reduction="none")

    def predictions(self, logits):
        preds = self.raw(logits).float()
        return preds, torch.zeros_like(preds)

    def wrong(self, preds, targets):
        return torch.ones(len(preds), dtype=torch.bool)  # every sample has an error; the largest are shown

    def metrics(self, logits, targets):
        from torchmetrics.functional import (  # lazily: torchmetrics imports its image and audio metrics too
            r2_score,
            spearman_corrcoef,
        )

        pred, true = self.raw(logits), self.raw(targets)
        error = pred - true
        record = {"val_loss": self.sample_losses(logits, targets).mean().item(),
                  "val_mae": error.abs().mean().item(), "val_rmse": error.pow(2).mean().sqrt().item()}  # fmt: skip
        if len(true) > 1 and float(true.std()) > 0:
            record["val_r2"] = float(r2_score(pred, true))
            record["val_spearman"] = float(torch.nan_to_num(spearman_corrcoef(pred, true), nan=0.0))
        return record

    def caption(self, pred, confidence, target, classes):
        true = float(self.raw(target.reshape(1))[0])
        return f"{float(pred):.4g}", f"error {float(pred) - true:+.3g}", f"{true:.4g}"

    def decode(self, logits, classes):
        return [Decoded(float(v), {}) for v in self.raw(logits).tolist()]

    def to_meta(self):
        # The bundle outputs the number itself (the scaling is folded into its head): decode with 0 and 1.
        return super().to_meta() | {
            "target": self.target_name,
            "train_mean": self.mean,
            "train_std": self.std,
        }
