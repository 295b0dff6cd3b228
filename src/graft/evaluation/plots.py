"""The report's figures as PNG bytes: training curves, confusion matrix, reliability diagram (single-label),
precision-recall curves per label (multi-label), predicted against true and the residuals (regression).

matplotlib is imported here, on first use, with the Agg backend (no display, no GUI toolkit): the
report is written at the end of training and on servers.
"""

from __future__ import annotations

import io
from typing import Any

DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def curves(
    history: list[dict[str, float]], best_epoch: int | None = None, metric: str = "val_acc",
    title: str = "validation accuracy (%)", percent: bool = True,
) -> bytes:  # fmt: skip
    """Loss (train and validation) and a validation metric (accuracy; mAP, MAE for the other tasks) per
    epoch, from metrics.csv rows."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [row["train_loss"] for row in history], "o-", label="train (label-smoothed)")
    left.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    left.set(title="loss", xlabel="epoch")
    left.legend(frameon=False)
    shown = [row for row in history if metric in row]
    scale = 100 if percent else 1
    right.plot(
        [row["epoch"] for row in shown], [scale * row[metric] for row in shown], "o-", color="tab:green"
    )
    right.set(title=title, xlabel="epoch")
    if percent:
        low, high = right.get_ylim()
        right.set_ylim(max(0, low), min(100.5, high))  # a flat 100% line should not get a 96-104% axis
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
    if best_epoch is not None:
        right.annotate("bundled", (best_epoch, right.get_ylim()[0]), xytext=(3, 3), textcoords="offset points",
                       color="grey", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return _png(fig)


def confusion(matrix: list[list[int]], classes: list[str]) -> bytes:
    """Counts, colored by the share of each true class (so rare classes' errors are visible too)."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    side = min(14, max(4, 0.45 * n + 2))
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 40:  # beyond that, ticks and numbers overlap; the table and metrics.json have them
        ax.set_xticks(range(n), classes, rotation=90 if n > 8 else 0)
        ax.set_yticks(range(n), classes)
    if n <= 25:
        for t in range(n):
            for p in range(n):
                if counts[t, p]:
                    ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=8 if n > 12 else 10,
                            color="white" if shares[t, p] > 0.5 else "black")  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.tight_layout()
    return _png(fig)


def reliability(bins: list[dict[str, Any]], ece: float) -> bytes:
    """Accuracy per confidence bin against the diagonal (perfect calibration), with the bin counts."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.6, 5), height_ratios=(3, 1), sharex=True)
    width = bins[0]["hi"] - bins[0]["lo"]
    filled = [b for b in bins if b["count"]]
    top.bar([b["lo"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
            edgecolor="black", color="tab:blue", alpha=0.8, label="accuracy")  # fmt: skip
    top.plot([b["lo"] + width / 2 for b in filled], [b["confidence"] for b in filled], "o", color="tab:red",
             markersize=4, label="mean confidence")  # fmt: skip
    top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    top.set(ylim=(0, 1), ylabel="accuracy", title=f"reliability (ECE {ece:.2%})")
    top.legend(frameon=False, fontsize=8, loc="upper left")
    bottom.bar([b["lo"] for b in bins], [b["count"] for b in bins], width=width, align="edge", color="grey")
    bottom.set(xlim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="samples")
    fig.tight_layout()
    return _png(fig)


PR_PANELS = 30  # labels drawn at most (the table and metrics.json have every label)


def pr_curves(curves: list[tuple[list[float], list[float]]], labels: list[dict[str, Any]]) -> bytes:
    """One small precision-recall panel per label (`labels`: metrics.json's per_label rows), with the
    point the tuned threshold operates at."""
    plt = _pyplot()
    shown = list(range(len(labels)))[:PR_PANELS]
    cols = min(5, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.4 * cols, 2.3 * rows), squeeze=False, sharex=True, sharey=True
    )
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, j in zip(axes.flat, shown, strict=False):
        precision, recall = curves[j]
        row = labels[j]
        ax.plot(recall, precision, color="tab:blue", linewidth=1.2)
        if row["support"]:
            ax.plot([row["recall"]], [row["precision"]], "o", color="tab:red", markersize=4)
        ap = f"AP {row['ap']:.2f}" if row["ap"] is not None else "no positives"
        ax.set_title(f"{row['label']} ({ap})", fontsize=9)
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("recall", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("precision", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def predicted_vs_true(true: list[float], predicted: list[float], target: str) -> bytes:
    """Each sample's prediction against its true value; on the diagonal is exact."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(true, predicted, s=12, alpha=0.6, color="tab:blue", edgecolors="none")
    low, high = min(*true, *predicted), max(*true, *predicted)
    ax.plot([low, high], [low, high], "--", color="grey", linewidth=1, label="predicted = true")
    ax.set(xlabel=f"true {target}", ylabel=f"predicted {target}", title="predicted vs true")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def residuals(true: list[float], predicted: list[float], target: str) -> bytes:
    """The residual (predicted - true) against the true value, and their histogram: a slope on the left
    is regression to the mean (large values under-, small ones over-predicted)."""
    plt = _pyplot()
    error = [p - t for p, t in zip(predicted, true, strict=True)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.scatter(true, error, s=12, alpha=0.6, color="tab:blue", edgecolors="none")
    left.axhline(0, color="grey", linestyle="--", linewidth=1)
    left.set(xlabel=f"true {target}", ylabel="predicted - true", title="residuals")
    right.hist(error, bins=min(30, max(5, len(error) // 4)), color="tab:blue", alpha=0.8)
    right.axvline(0, color="grey", linestyle="--", linewidth=1)
    right.set(xlabel="predicted - true", ylabel="samples", title="residual distribution")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
