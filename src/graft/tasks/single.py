"""Single-label classification: one class per sample, softmax over the classes, cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from graft.tasks.base import Decoded, Task


class SingleLabel(Task):
    name = "single-label"
    problem_type = "single_label_classification"
    monitor = "val_acc"
    metrics_shown = ("val_acc", "val_loss")

    def targets(self, labels: Sequence) -> torch.Tensor:
        return torch.as_tensor(list(labels), dtype=torch.long)

    def loss(self, logits, targets, weights=None, label_smoothing=0.0):
        return F.cross_entropy(logits, targets, weights, label_smoothing=label_smoothing)

    def sample_losses(self, logits, targets):
        return F.cross_entropy(logits, targets, reduction="none")

    def predictions(self, logits):
        confidence, preds = logits.softmax(dim=1).max(dim=1)
        return preds, confidence

    def metrics(self, logits, targets):
        from torchmetrics.functional.classification import (
            multiclass_accuracy,  # lazily: torchmetrics imports its image and audio metrics too
        )

        accuracy = multiclass_accuracy(logits, targets, num_classes=logits.shape[1], average="micro")
        return {"val_loss": self.sample_losses(logits, targets).mean().item(), "val_acc": accuracy.item()}

    def caption(self, pred, confidence, target, classes):
        return classes[int(pred)], f"{float(confidence):.2f}", classes[int(target)]

    def decode(self, logits, classes):
        probs = logits.float().softmax(dim=1)
        return [Decoded(classes[int(row.argmax())], dict(zip(classes, map(float, row), strict=True)))
                for row in probs]  # fmt: skip
