"""Multi-label evaluation: metrics at the bundle's tuned thresholds, precision-recall curves, the worst
samples per label, and one row of predictions per sample.

A label is predicted when its sigmoid probability reaches the label's threshold, tuned on the validation
split when the bundle was written (tasks/multi.py `tune_thresholds`, stored in graft.json). mAP is macro
average precision over the labels that have a positive sample here (AP is undefined without one); micro F1
pools every (sample, label) decision, macro F1 averages the labels' F1; subset accuracy counts the samples
whose whole label set is right. Every number is torchmetrics'.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multilabel_average_precision,
    multilabel_exact_match,
    multilabel_f1_score,
    multilabel_hamming_distance,
    multilabel_precision,
    multilabel_precision_recall_curve,
    multilabel_recall,
)

from graft.evaluation.gallery import Worst
from graft.tasks.multi import quiet_missing_labels

PER_LABEL_SHOWN = 4  # worst samples shown per label


@torch.no_grad()
def multilabel_metrics(
    logits: torch.Tensor, targets: torch.Tensor, classes: list[str], thresholds: list[float]
) -> dict[str, Any]:
    """`logits` (N, L) raw, `targets` (N, L) multi-hot -> every metric of the report (metrics.json).

    >>> m = multilabel_metrics(torch.tensor([[2.0, -2.0], [-1.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]),
    ...                        ["a", "b"], [0.5, 0.5])
    >>> m["subset_accuracy"], m["micro_f1"]
    (0.5, 0.8)
    """
    n, labels = len(classes), logits.shape[1]
    assert logits.shape == targets.shape and labels == n == len(thresholds), (
        f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, {n} labels, {len(thresholds)} thresholds"
    )
    logits, targets = logits.float().cpu(), targets.float().cpu()
    probs, truth = logits.sigmoid(), targets.round().long()
    preds = (probs >= torch.tensor(thresholds)).long()  # 0/1 ints: torchmetrics takes them as decisions

    def per_label(fn) -> list[float]:
        return fn(preds, truth, num_labels=n, average=None).tolist()

    precision, recall, f1 = (
        per_label(multilabel_precision),
        per_label(multilabel_recall),
        per_label(multilabel_f1_score),
    )
    support, predicted = truth.sum(0).tolist(), preds.sum(0).tolist()
    with quiet_missing_labels():
        ap = multilabel_average_precision(probs, truth, num_labels=n, average=None).tolist()
    ap = [a if s else None for a, s in zip(ap, support, strict=True)]  # no positive sample: AP is undefined
    scored = [a for a in ap if a is not None]
    return {
        "task": "multi-label",
        "num_samples": len(targets),
        "num_classes": n,
        "loss": F.binary_cross_entropy_with_logits(logits, targets).item(),
        "map": sum(scored) / len(scored) if scored else 0.0,
        "map_labels": len(scored),  # the labels mAP averages over (those with a positive sample here)
        "micro_f1": multilabel_f1_score(preds, truth, num_labels=n, average="micro").item(),
        "macro_f1": multilabel_f1_score(preds, truth, num_labels=n, average="macro").item(),
        "subset_accuracy": multilabel_exact_match(preds, truth, num_labels=n).item(),
        "hamming_loss": multilabel_hamming_distance(preds, truth, num_labels=n, average="micro").item(),
        "labels_per_sample": {"true": truth.sum(1).float().mean().item(), "predicted": preds.sum(1).float().mean().item()},
        "thresholds": list(thresholds),
        "per_label": [
            {"label": name, "threshold": thresholds[i], "precision": precision[i], "recall": recall[i],
             "f1": f1[i], "ap": ap[i], "support": int(support[i]), "predicted": int(predicted[i])}
            for i, name in enumerate(classes)
        ],
    }  # fmt: skip


def pr_curves(logits: torch.Tensor, targets: torch.Tensor) -> list[tuple[list[float], list[float]]]:
    """Per label (precision, recall) points over every threshold, for the report's figure."""
    probs, truth = logits.float().cpu().sigmoid(), targets.round().long().cpu()
    with quiet_missing_labels():
        precision, recall, _ = multilabel_precision_recall_curve(probs, truth, num_labels=probs.shape[1])
    return [(p.tolist(), r.tolist()) for p, r in zip(precision, recall, strict=True)]


def worst_per_label(
    items: list, logits: torch.Tensor, targets: torch.Tensor, classes: list[str], thresholds: list[float],
    n: int = PER_LABEL_SHOWN,
) -> dict[str, list[Worst]]:  # fmt: skip
    """Per label, its `n` worst mistakes (missed positives with the lowest probability, false alarms with the
    highest), worst first; a label without mistakes has an empty list."""
    probs, truth = logits.float().cpu().sigmoid(), targets.round().bool().cpu()
    preds = probs >= torch.tensor(thresholds)
    out: dict[str, list[Worst]] = {}
    for j, name in enumerate(classes):
        p, t = probs[:, j], truth[:, j]
        loss = torch.where(t, -p.clamp_min(1e-12).log(), -(1 - p).clamp_min(1e-12).log())  # BCE of this label
        wrong = (preds[:, j] != t).nonzero().flatten()
        order = wrong[loss[wrong].argsort(descending=True, stable=True)][:n].tolist()
        out[name] = [
            Worst(items[i], label_names(truth[i], classes) or "(none)", label_names(preds[i], classes) or "(none)",
                  f"p({name}) {p[i]:.2f}, threshold {thresholds[j]:.2f}: {'missed' if t[i] else 'false alarm'}",
                  wrong=True)
            for i in order
        ]  # fmt: skip
    return out


def prediction_rows(
    items: list, logits: torch.Tensor, targets: torch.Tensor, classes: list[str], thresholds: list[float],
    separator: str = ";",
) -> list[dict[str, Any]]:  # fmt: skip
    """predictions.csv: per sample the true and predicted label sets and each label's probability."""
    probs, truth = logits.float().cpu().sigmoid(), targets.round().bool().cpu()
    preds = probs >= torch.tensor(thresholds)
    return [
        {"true": label_names(truth[i], classes, separator), "predicted": label_names(preds[i], classes, separator)}
        | {f"p_{name}": round(float(probs[i, j]), 6) for j, name in enumerate(classes)}
        for i in range(len(items))
    ]  # fmt: skip


def label_names(row: torch.Tensor, classes: list[str], separator: str = ", ") -> str:
    return separator.join(c for c, on in zip(classes, row.tolist(), strict=True) if on)
