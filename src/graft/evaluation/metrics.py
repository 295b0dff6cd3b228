"""Classification metrics from logits and targets, as one JSON-ready dict (the report's metrics.json).

Every number is torchmetrics' (accuracy, top-k, F1, per-class precision/recall, confusion matrix, ECE);
what is computed here is only what torchmetrics has no class for: support, the most-confused pairs and
the reliability diagram's bins.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.functional.classification import multiclass_calibration_error

ECE_BINS = 15  # torchmetrics' default, and the usual choice in the calibration literature


def expected_calibration_error(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """torchmetrics' multiclass ECE (15 equal-width bins, L1), as the report computes it."""
    probs = logits.float().softmax(dim=1)
    return multiclass_calibration_error(
        probs, targets, num_classes=logits.shape[1], n_bins=ECE_BINS, norm="l1"
    ).item()


def top_k_for(num_classes: int) -> int:
    """k for top-k accuracy: 5, or num_classes - 1 when there are fewer (top-num_classes is always 100%)."""
    return max(1, min(5, num_classes - 1))


@torch.no_grad()
def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """`logits` (N, C), `targets` (N,) class indices -> every metric of the report.

    >>> m = classification_metrics(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), ["a", "b"])
    >>> m["accuracy"], m["confusion_matrix"]
    (0.5, [[1, 1], [0, 0]])
    """
    num_classes = len(classes)
    assert logits.shape == (len(targets), num_classes), (
        f"logits {tuple(logits.shape)} vs {len(targets)} targets, {num_classes} classes"
    )
    logits, targets = logits.float().cpu(), targets.long().cpu()
    probs = logits.softmax(dim=1)
    c, k = num_classes, top_k_for(num_classes)

    def per_class(metric_cls) -> list[float]:
        return metric_cls(num_classes=c, average=None)(probs, targets).tolist()

    confusion = MulticlassConfusionMatrix(num_classes=c)(probs, targets)  # rows: true, columns: predicted
    support = confusion.sum(dim=1)
    precision, recall, f1 = (
        per_class(MulticlassPrecision),
        per_class(MulticlassRecall),
        per_class(MulticlassF1Score),
    )
    return {
        "num_samples": len(targets),
        "num_classes": c,
        "loss": F.cross_entropy(logits, targets).item(),
        "accuracy": MulticlassAccuracy(num_classes=c, average="micro")(probs, targets).item(),
        "top_k": k,
        "top_k_accuracy": MulticlassAccuracy(num_classes=c, top_k=k, average="micro")(probs, targets).item(),
        "macro_f1": MulticlassF1Score(num_classes=c, average="macro")(probs, targets).item(),
        "weighted_f1": MulticlassF1Score(num_classes=c, average="weighted")(probs, targets).item(),
        "ece": expected_calibration_error(logits, targets),
        "ece_bins": ECE_BINS,
        "per_class": [
            {
                "class": name,
                "precision": precision[i],
                "recall": recall[i],
                "f1": f1[i],
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused(confusion, classes),
        "reliability": reliability_bins(probs, targets),
    }


def most_confused(confusion: torch.Tensor, classes: list[str], n: int = 10) -> list[dict[str, Any]]:
    """The largest off-diagonal cells: (true, predicted, count, share of that true class), largest first."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    pairs = [
        (int(off[t, p]), t, p) for t in range(len(classes)) for p in range(len(classes)) if off[t, p] > 0
    ]
    pairs.sort(key=lambda item: (-item[0], item[1], item[2]))  # ties in class order: a stable report
    support = confusion.sum(dim=1)
    return [
        {
            "true": classes[t],
            "predicted": classes[p],
            "count": count,
            "share_of_true": count / int(support[t]),
        }
        for count, t, p in pairs[:n]
    ]


def reliability_bins(
    probs: torch.Tensor, targets: torch.Tensor, n_bins: int = ECE_BINS
) -> list[dict[str, Any]]:
    """Per confidence bin [lo, hi): samples, mean confidence and accuracy (the last bin includes 1.0).

    The same equal-width bins as MulticlassCalibrationError, whose ECE is the count-weighted mean of
    |accuracy - confidence| over these bins."""
    confidence, preds = probs.max(dim=1)
    correct = (preds == targets).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        bins.append({
            "lo": edges[b].item(), "hi": edges[b + 1].item(), "count": count,
            "confidence": confidence[mask].mean().item() if count else None,
            "accuracy": correct[mask].mean().item() if count else None,
        })  # fmt: skip
    return bins
