"""Probabilities that mean what they say: temperature scaling, fit on the validation split, folded into
the head.

A network's softmax is usually over- or under-confident (label smoothing, weight decay and early stopping
all move it); temperature scaling (Guo et al., ICML 2017, "On Calibration of Modern Neural Networks")
divides the logits by one scalar T, fit by minimising the validation log loss. It changes no prediction
(argmax is unchanged), only the confidence, and on these models it removes most of the calibration error.

graft folds T into the classifier itself: for a head `logits = W x + b`, dividing W and b by T gives the
calibrated logits from the same architecture. So every consumer of the bundle (graft predict, the Python
API, plain timm / torchvision / transformers loading, and every export) applies it without knowing about
it; graft.json records T and the validation ECE and log loss before and after.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from graft.evaluation.metrics import expected_calibration_error

T_RANGE = (0.05, 20.0)  # beyond these a validation set is too small or too degenerate to trust the fit
MIN_SAMPLES = 20  # fewer validation samples say too little about confidence to fit anything on


def cannot_fit(logits: torch.Tensor, targets: torch.Tensor) -> str | None:
    """Why no temperature can be fit on these logits, or None. Without a single mistake (or a single right
    answer) the validation loss keeps falling as T goes to 0 (or infinity): there is no optimum."""
    if len(targets) < MIN_SAMPLES:
        return f"only {len(targets)} validation samples (at least {MIN_SAMPLES} needed)"
    correct = (logits.argmax(dim=1).cpu() == targets.cpu()).float().mean().item()
    if correct in (0.0, 1.0):
        return f"validation accuracy is {correct:.0%}: no optimum to fit"
    return None


@dataclass
class Calibration:
    temperature: float  # logits were divided by this
    val_ece_before: float
    val_ece_after: float
    val_nll_before: float
    val_nll_after: float
    samples: int  # validation samples it was fit on
    method: str = "temperature"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"temperature {self.temperature:.3g} fit on {self.samples} validation samples: "
            f"ECE {self.val_ece_before:.1%} -> {self.val_ece_after:.1%}"
        )


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> Calibration:
    """The T > 0 minimising the mean cross-entropy of logits / T (one-dimensional, convex in log T's
    neighbourhood of the optimum; solved by L-BFGS on log T)."""
    # clone(): logits made under inference_mode cannot enter an autograd graph as they are
    logits, targets = logits.detach().float().cpu().clone(), targets.detach().long().cpu().clone()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    t = float(min(max(log_t.exp().item(), T_RANGE[0]), T_RANGE[1]))
    if not math.isfinite(t):
        t = 1.0
    return Calibration(
        temperature=t,
        val_ece_before=expected_calibration_error(logits, targets),
        val_ece_after=expected_calibration_error(logits / t, targets),
        val_nll_before=F.cross_entropy(logits, targets).item(),
        val_nll_after=F.cross_entropy(logits / t, targets).item(),
        samples=len(targets),
    )


@torch.no_grad()
def fold_temperature(head: nn.Linear, temperature: float) -> None:
    """Make `head` output its logits divided by `temperature` (in place)."""
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)
