"""Multi-label classification: any set of the classes per sample, one sigmoid per label.

Trained with `BCEWithLogitsLoss` (per-label `pos_weight` under --balance loss). A label is predicted when
its probability reaches its own threshold, tuned on the validation outputs of the bundled model for the
best F1 of that label (`tune_thresholds`) and stored in the bundle; 0.5 until then. Validation reports
mAP (macro average precision: threshold-free, what "best" watches), micro and macro F1 at 0.5 during
training, and subset accuracy (every label right), all"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from graft.tasks.base import Decoded, Task

DEFAULT_THRESHOLD = 0.5


@dataclass
class MultiLabel(Task):
    num_labels: int = 0
    thresholds: list[float] | None = None  # per label; None: 0.5 each (before tuning)

    name = "multi-label"
    problem_type = "multi_label_classification"
    monitor = "val_map"
    metrics_shown = ("val_map", "val_f1", "val_loss")

    def targets(self, labels: Sequence) -> torch.Tensor:
        multi_hot = torch.zeros(len(labels), self.num_labels)
        for row, present in enumerate(labels):
            multi_hot[row, list(present)] = 1.0
        return multi_hot

    def loss(self, logits, targets, weights=None, label_smoothing=0.0):
        """`weights`: BCE's pos_weight per label (--balance loss, data/check.py `balance_weights`)."""
        if label_smoothing:  # towards 0.5 per label, as timm's BinaryCrossEntropy smooths
            targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights)

    def sample_losses(self, logits, targets):
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)

    def cutoffs(self, device: torch.device | None = None) -> torch.Tensor:
        values = self.thresholds or [DEFAULT_THRESHOLD] * self.num_labels
        return torch.tensor(values, device=device)

    def predictions(self, logits):
        probs = logits.sigmoid()
        preds = (probs >= self.cutoffs(logits.device)).long()
        # How sure the whole prediction is: the least confident of the label decisions.
        confidence = torch.where(preds.bool(), probs, 1 - probs).min(dim=1).values
        return preds, confidence

    def metrics(self, logits, targets):
        from torchmetrics.functional.classification import (  # lazily: torchmetrics imports its image and audio metrics too
            multilabel_average_precision,
            multilabel_exact_match,
            multilabel_f1_score,
        )

        probs, truth = logits.sigmoid(), targets.round().long()
        n = logits.shape[1]
        # Macro AP over the labels present in validation: a label with no positive there has no AP (torchmetrics
        # would count it as 0 and pull the mean down by a label the data cannot measure; the check warns of it).
        present = truth.sum(0) > 0
        with quiet_missing_labels():  # the labels without positives are left out below
            per_label = multilabel_average_precision(probs, truth, num_labels=n, average=None)
        kinds = {"val_map": per_label[present].mean() if present.any() else torch.tensor(0.0)}
        at = self.cutoffs(logits.device)
        preds = (probs >= at).long()
        kinds["val_f1"] = multilabel_f1_score(preds, truth, num_labels=n, average="micro", threshold=0.5)
        kinds["val_macro_f1"] = multilabel_f1_score(
            preds, truth, num_labels=n, average="macro", threshold=0.5
        )
        kinds["val_subset_acc"] = multilabel_exact_match(preds, truth, num_labels=n, threshold=0.5)
        record = {"val_loss": self.sample_losses(logits, targets).mean().item()}
        return record | {k: float(torch.nan_to_num(v, nan=0.0)) for k, v in kinds.items()}

    def caption(self, pred, confidence, target, classes):
        def names(row: torch.Tensor) -> str:
            return ", ".join(c for c, on in zip(classes, row.tolist(), strict=True) if on) or "(none)"

        return names(pred), f"{float(confidence):.2f}", names(target.round())

    def decode(self, logits, classes):
        probs = logits.float().sigmoid()
        cut = self.cutoffs()
        return [Decoded([c for c, p, t in zip(classes, row.tolist(), cut.tolist(), strict=True) if p >= t],
                        dict(zip(classes, map(float, row), strict=True))) for row in probs]  # fmt: skip

    def to_meta(self):
        thresholds = self.thresholds or [DEFAULT_THRESHOLD] * self.num_labels
        return super().to_meta() | {"thresholds": [round(t, 4) for t in thresholds]}


@contextmanager
def quiet_missing_labels():
    """torchmetrics warns "No positive samples found in target" for a label absent from the data; graft
    leaves such labels out of mAP and says so once (the data check, the report)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No positive samples")
        yield


MIN_POSITIVES = 5  # fewer positives of a label in validation: its cut-off would be fit to one or two samples


def tune_thresholds(logits: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Per label, the probability cut-off with the best F1 on these outputs (validation): the midpoint
    between neighbouring scores, so the stored value does not sit on one sample's score. A label with
    fewer than MIN_POSITIVES positives keeps 0.5. Low cut-offs are right for rare labels: with calibrated
    probabilities the F1-optimal cut-off is half the best F1 (Lipton et al., 2014), 0.1 for a label whose
    best F1 is 0.2."""
    probs, truth = logits.float().sigmoid(), targets.round().bool()
    chosen = []
    for label in range(probs.shape[1]):
        p, t = probs[:, label], truth[:, label]
        if int(t.sum()) < MIN_POSITIVES:
            chosen.append(DEFAULT_THRESHOLD)
            continue
        order = p.argsort(descending=True)
        p_sorted, t_sorted = p[order], t[order].float()
        true_pos = t_sorted.cumsum(0)
        predicted = torch.arange(1, len(p) + 1, dtype=torch.float)
        f1 = 2 * true_pos / (predicted + t_sorted.sum())  # predicting the top k as positive
        k = int(f1.argmax())
        below = p_sorted[k + 1] if k + 1 < len(p_sorted) else p_sorted[k] * 0.5
        chosen.append(float((p_sorted[k] + below) / 2))
    return chosen
