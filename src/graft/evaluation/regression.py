"""Regression evaluation: errors in the target's own units, the residuals, the largest errors, and one row
of predictions per sample.

The bundle's head outputs the number itself (the training scaling is folded into it, tasks/regression.py),
so its outputs are the predictions. MAE, RMSE, R² and Spearman's rank correlation are torchmetrics'; the
residual (predicted - true) summary says whether the model is biased (mean) and how its errors spread.
`baseline_mae` is what always predicting the training mean would score: a model near it learned little.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional import (
    mean_absolute_error,
    mean_squared_error,
    pearson_corrcoef,
    r2_score,
    spearman_corrcoef,
)

from graft.evaluation.gallery import Worst

WORST_SHOWN = 16


@torch.no_grad()
def regression_metrics(
    predicted: torch.Tensor, true: torch.Tensor, target: str = "target", train_mean: float | None = None
) -> dict[str, Any]:
    """`predicted` and `true` (N,) in the target's units -> every metric of the report (metrics.json).

    >>> m = regression_metrics(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 3.0]))
    >>> m["mae"], m["residuals"]["mean"]
    (0.6666666865348877, 0.0)
    """
    pred, true = predicted.reshape(-1).double().cpu(), true.reshape(-1).double().cpu()
    assert len(pred) == len(true) > 0, f"{len(pred)} predictions vs {len(true)} targets"
    residual = pred - true
    varied = len(true) > 1 and float(true.std()) > 0 and float(pred.std()) > 0
    return {
        "task": "regression",
        "target": target,
        "num_samples": len(true),
        "mae": mean_absolute_error(pred, true).item(),
        "rmse": mean_squared_error(pred, true, squared=False).item(),
        # R² and the correlations need spread in both: None (not a number) for a constant prediction
        "r2": float(r2_score(pred, true)) if len(true) > 1 and float(true.std()) > 0 else None,
        "spearman": float(spearman_corrcoef(pred, true)) if varied else None,
        "pearson": float(pearson_corrcoef(pred, true)) if varied else None,
        "median_abs_error": residual.abs().median().item(),
        "baseline_mae": (true - train_mean).abs().mean().item() if train_mean is not None else None,
        "train_mean": train_mean,
        "residuals": {  # predicted - true
            "mean": residual.mean().item(),
            "std": residual.std().item() if len(residual) > 1 else 0.0,
            "median": residual.median().item(),
            "abs_p90": residual.abs().quantile(0.9).item(),
            "abs_max": residual.abs().max().item(),
        },
        "true": summary(true),
        "predicted": summary(pred),
    }


def summary(values: torch.Tensor) -> dict[str, float]:
    """count, mean, std, min and max of some numbers (the data section's table)."""
    v = values.double()
    return {"count": len(v), "mean": v.mean().item(), "std": v.std().item() if len(v) > 1 else 0.0,
            "min": v.min().item(), "max": v.max().item()}  # fmt: skip


def largest_errors(
    items: list, predicted: torch.Tensor, true: torch.Tensor, n: int = WORST_SHOWN
) -> list[Worst]:
    """The `n` samples with the largest |predicted - true|, largest first."""
    pred, true = predicted.reshape(-1).double().cpu(), true.reshape(-1).double().cpu()
    error = pred - true
    order = error.abs().argsort(descending=True, stable=True)[:n].tolist()
    return [
        Worst(items[i], f"{true[i]:.4g}", f"{pred[i]:.4g}", f"error {error[i]:+.3g}", wrong=True)
        for i in order
    ]


def prediction_rows(predicted: torch.Tensor, true: torch.Tensor) -> list[dict[str, Any]]:
    """predictions.csv: per sample the true number, the prediction and the error (predicted - true)."""
    pred, true = predicted.reshape(-1).double().cpu().tolist(), true.reshape(-1).double().cpu().tolist()
    return [
        {"true": t, "predicted": round(p, 6), "error": round(p - t, 6)}
        for p, t in zip(pred, true, strict=True)
    ]
