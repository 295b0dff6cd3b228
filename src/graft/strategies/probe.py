"""The converged head: the classifier on frozen features, solved as the convex problem it is.

With the backbone frozen, training the head is multinomial logistic regression on fixed features: convex,
one optimum. Trained like a network instead (minibatch AdamW from a zero init, label smoothing, a few
epochs), it stops far from that optimum: measured on 80 trivially separable texts, 50% after 2 epochs
where the solved problem gives 100%. graft solves it to convergence with full-batch L-BFGS, the solver
scikit-learn's `LogisticRegression` uses by default, on the cached features (seconds for thousands of
samples), and every fine-tuning strategy then starts from that head: linear probe, then fine-tune
(LP-FT; Kumar et al., ICLR 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution") beats both a probe alone and fine-tuning from a random head.

Multi-label: one logistic regression per label (scikit-learn's one-vs-rest), one C for all chosen the same
way by held-out binary log loss (`solve_sigmoid_head`). Regression: ridge regression on the standardised
targets, its alpha chosen by exact leave-one-out error as scikit-learn's `RidgeCV` does (`solve_ridge_head`).

The objective is scikit-learn's, per sample weighted:  sum_i w_i CE(W x_i + b, y_i) + |W|^2 / (2 C),
the bias unpenalised. The L2 strength C is chosen by stratified k-fold cross-validation on the training
features over a small log-spaced grid, scored by held-out log loss (the quantity the model is fit for;
accuracy on a few hundred samples moves in steps too coarse to choose by). The validation split is not
used to choose it, so validation accuracy stays an honest estimate of the probe.

    >>> x = torch.cat([torch.randn(20, 4) + 3, torch.randn(20, 4) - 3]); y = torch.tensor([0] * 20 + [1] * 20)
    >>> probe = solve_head(x, y, num_classes=2)
    >>> bool(((x @ probe.weight.T + probe.bias).argmax(1) == y).all())
    True
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# Inverse L2 strengths tried (scikit-learn's C; its default is 1.0): half-decade steps cover what frozen
# CNN and transformer features need (measured: 0.3 on the photo sets, 3-10 on the text sets).
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FOLDS = 3  # 3 x 6 fits, warm-started along the grid: about a second on 2 CPU cores for ~1,000 samples
CV_MAX_SAMPLES = 20_000  # larger training sets choose C on a stratified subset (the final fit uses all)
MAX_ITER = 100  # L-BFGS iterations for the final fit (converged to ~1e-4 of the loss on the photo sets)
CV_MAX_ITER = 50  # per cross-validation fit: each starts from its neighbour's solution


@dataclass
class Probe:
    """A solved linear head, in nn.Linear's layout."""

    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    l2_c: float  # the chosen inverse L2 strength
    cv: list[dict[str, float]] = field(default_factory=list)  # per grid value: c, log_loss, accuracy
    train_loss: float = math.nan  # mean loss of the final fit on the training features
    seconds: float = 0.0
    kind: str = "softmax"  # softmax (single-label), sigmoid (one logistic per label), ridge (regression)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features.float() @ self.weight.T + self.bias

    def summary(self) -> str:
        if self.kind == "ridge":
            return f"ridge alpha={self.l2_c:g} chosen by leave-one-out on the training features"
        per_label = ", one logistic regression per label" if self.kind == "sigmoid" else ""
        return (
            f"L2 C={self.l2_c:g} chosen by {FOLDS}-fold cross-validation on the training features{per_label}"
        )


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    c: float,
    sample_weight: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = MAX_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (C, D), b (C,)) minimising sum_i w_i CE + |W|^2 / (2c) by L-BFGS, from `init` or zeros."""
    x = x.float()
    n, d = x.shape
    w = torch.ones(n, device=x.device) if sample_weight is None else sample_weight.float().to(x.device)
    # Divided by n: the same optimum, on a scale where L-BFGS's tolerances mean the same for any n.
    w = (w / n)[:, None]
    onehot = F.one_hot(y, num_classes).float()
    weight, bias, optimizer = _lbfgs_head(num_classes, d, init, max_iter, x.device)

    def closure() -> torch.Tensor:  # the loss and its gradient in closed form: no autograd graph per call
        logits = x @ weight.T + bias  # (N, C)
        nll = torch.logsumexp(logits, 1, keepdim=True) - (logits * onehot).sum(1, keepdim=True)
        residual = (logits.softmax(1) - onehot) * w  # d loss / d logits
        weight.grad = residual.T @ x + weight / (c * n)
        bias.grad = residual.sum(0)
        return (nll * w).sum() + (weight * weight).sum() / (2 * c * n)

    with torch.no_grad(), _threads_for(n * d):
        optimizer.step(closure)
    return weight, bias


def _lbfgs_head(
    outputs: int, d: int, init: tuple[torch.Tensor, torch.Tensor] | None, max_iter: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.optim.LBFGS]:
    """A linear head's (W, b), from `init` or zeros, and the full-batch L-BFGS that solves it (the closure
    sets the gradients in closed form)."""
    weight = init[0].clone() if init else torch.zeros(outputs, d, device=device)
    bias = init[1].clone() if init else torch.zeros(outputs, device=device)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
        tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe",
    )  # fmt: skip
    return weight, bias, optimizer


@contextmanager
def _threads_for(size: int):
    """One intra-op thread for small problems: L-BFGS takes hundreds of tiny matrix products, where thread
    start-up costs more than it saves (measured 2-10x slower with 2 threads on 400 x 1280 features)."""
    threads = torch.get_num_threads()
    if size < 4_000_000:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def stratified_folds(y: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """k disjoint index sets, each class dealt round-robin after a seeded shuffle."""
    generator = torch.Generator().manual_seed(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    turn = 0
    for label in torch.unique(y.cpu()).tolist():
        members = torch.nonzero(y.cpu() == label).flatten()
        for i in members[torch.randperm(len(members), generator=generator)].tolist():
            folds[turn % k].append(i)
            turn += 1
    return [torch.tensor(sorted(f), dtype=torch.long) for f in folds if f]


def solve_head(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    class_weights: torch.Tensor | None = None,
    grid: tuple[float, ...] = C_GRID,
    folds: int = FOLDS,
    seed: int = 0,
) -> Probe:
    """The head on features `x` (N, D) for labels `y` (N,): C by cross-validation, then one fit on all."""
    started = time.perf_counter()
    x, y = x.float(), y.long().to(x.device)
    weight_of = None if class_weights is None else class_weights.float().to(x.device)
    sample_weight = None if weight_of is None else weight_of[y]
    chosen, scores = grid[0], []
    if len(grid) > 1 and len(y) >= 2 * folds:
        scores = cross_validate(x, y, num_classes, weight_of, grid, folds, seed)
        chosen = min(scores, key=lambda s: (s["log_loss"], -s["c"]))["c"]  # ties: the weaker penalty
    weight, bias = fit_logistic(x, y, num_classes, chosen, sample_weight)
    loss = F.cross_entropy(x @ weight.T + bias, y).item()
    return Probe(weight.cpu(), bias.cpu(), chosen, scores, loss, time.perf_counter() - started)


def cross_validate(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    class_weights: torch.Tensor | None,
    grid: tuple[float, ...],
    folds: int,
    seed: int,
) -> list[dict[str, float]]:
    """Held-out log loss and accuracy of each C over `folds` stratified folds (on at most
    CV_MAX_SAMPLES samples). Each fold walks the grid from the strongest penalty to the weakest, each fit
    warm-started from the previous one's solution."""
    if len(y) > CV_MAX_SAMPLES:
        keep = torch.cat(stratified_folds(y, math.ceil(len(y) / CV_MAX_SAMPLES), seed)[:1])
        x, y = x[keep], y[keep]
    totals = {c: [0.0, 0.0] for c in grid}
    for held in stratified_folds(y, folds, seed):
        train = torch.ones(len(y), dtype=torch.bool, device=x.device)
        train[held.to(x.device)] = False
        weights = None if class_weights is None else class_weights[y[train]]
        previous = None
        for c in sorted(grid):
            previous = fit_logistic(x[train], y[train], num_classes, c, weights, previous, CV_MAX_ITER)
            logits = x[held] @ previous[0].T + previous[1]
            totals[c][0] += F.cross_entropy(logits, y[held], reduction="sum").item()
            totals[c][1] += (logits.argmax(1) == y[held]).sum().item()
    return [
        {"c": c, "log_loss": loss / len(y), "accuracy": hits / len(y)} for c, (loss, hits) in totals.items()
    ]


def fit_sigmoid(
    x: torch.Tensor, y: torch.Tensor, c: float, pos_weight: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None, max_iter: int = MAX_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(W (L, D), b (L,)) minimising, per label, sum_i BCE + |w|^2 / (2c): L independent logistic
    regressions (y (N, L) of 0/1), solved together by L-BFGS (their sum separates)."""
    x, y = x.float(), y.float().to(x.device)
    n, d = x.shape
    labels = y.shape[1]
    p = torch.ones(labels, device=x.device) if pos_weight is None else pos_weight.float().to(x.device)
    weight, bias, optimizer = _lbfgs_head(labels, d, init, max_iter, x.device)

    def closure() -> torch.Tensor:
        logits = x @ weight.T + bias
        # BCE with pos_weight p: -(p y log s + (1 - y) log(1 - s)); its gradient (p y + 1 - y) s - p y
        loss = p * y * F.softplus(-logits) + (1 - y) * F.softplus(logits)
        residual = ((p * y + 1 - y) * logits.sigmoid() - p * y) / n
        weight.grad = residual.T @ x + weight / (c * n)
        bias.grad = residual.sum(0)
        return loss.sum() / n + (weight * weight).sum() / (2 * c * n)

    with torch.no_grad(), _threads_for(n * d):
        optimizer.step(closure)
    return weight, bias


def solve_sigmoid_head(
    x: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor | None = None, grid: tuple[float, ...] = C_GRID,
    folds: int = FOLDS, seed: int = 0,
) -> Probe:  # fmt: skip
    """The multi-label head: C by k-fold held-out binary log loss (folds dealt by each sample's first
    label), then one fit on all."""
    started = time.perf_counter()
    x, y = x.float(), y.float().to(x.device)
    scores, chosen = [], grid[0]
    if len(grid) > 1 and len(y) >= 2 * folds:
        sample = y.argmax(1)  # a sample's first label: folds that each hold every label, roughly
        if len(y) > CV_MAX_SAMPLES:
            keep = torch.cat(stratified_folds(sample, math.ceil(len(y) / CV_MAX_SAMPLES), seed)[:1])
            x_cv, y_cv, sample = x[keep], y[keep], sample[keep]
        else:
            x_cv, y_cv = x, y
        totals = dict.fromkeys(grid, 0.0)
        for held in stratified_folds(sample, folds, seed):
            train = torch.ones(len(y_cv), dtype=torch.bool, device=x.device)
            train[held.to(x.device)] = False
            previous = None
            for c in sorted(grid):
                previous = fit_sigmoid(x_cv[train], y_cv[train], c, pos_weight, previous, CV_MAX_ITER)
                logits = x_cv[held] @ previous[0].T + previous[1]
                totals[c] += F.binary_cross_entropy_with_logits(logits, y_cv[held], reduction="sum").item()
        scores = [{"c": c, "log_loss": total / y_cv.numel()} for c, total in totals.items()]
        chosen = min(scores, key=lambda s: (s["log_loss"], -s["c"]))["c"]
    weight, bias = fit_sigmoid(x, y, chosen, pos_weight)
    loss = F.binary_cross_entropy_with_logits(x @ weight.T + bias, y).item()
    return Probe(weight.cpu(), bias.cpu(), chosen, scores, loss, time.perf_counter() - started, "sigmoid")


# Ridge penalties tried, on the sum-of-squares scale of the features (RidgeCV's alphas): frozen features'
# useful range varies by orders of magnitude with the backbone, and each value costs one matrix product.
RIDGE_ALPHAS = tuple(10.0**k for k in range(-2, 7))


def solve_ridge_head(x: torch.Tensor, y: torch.Tensor, alphas: tuple[float, ...] = RIDGE_ALPHAS) -> Probe:
    """The regression head: ridge on centred features (intercept unpenalised) for targets y (N,), alpha
    chosen by exact leave-one-out squared error from one SVD (the hat matrix's diagonal, as RidgeCV)."""
    started = time.perf_counter()
    x64, y64 = x.double(), y.double().reshape(-1).to(x.device)
    n = len(y64)
    mean_x, mean_y = x64.mean(0), y64.mean()
    u, singular, vh = torch.linalg.svd(x64 - mean_x, full_matrices=False)
    uty = u.T @ (y64 - mean_y)
    scores = []
    for alpha in alphas:
        shrink = singular**2 / (singular**2 + alpha)
        fitted = u @ (shrink * uty) + mean_y
        hat = (u**2 @ shrink) + 1.0 / n  # the intercept's share of each point's own fit
        loo = (y64 - fitted) / (1 - hat).clamp_min(1e-12)
        scores.append({"c": alpha, "log_loss": float((loo**2).mean())})  # "log_loss": the CV loss column
    chosen = min(scores, key=lambda s: (s["log_loss"], -s["c"]))["c"]
    coef = vh.T @ (singular / (singular**2 + chosen) * uty)
    bias = mean_y - mean_x @ coef
    weight = coef.float()[None, :]
    loss = F.mse_loss((x.float() @ weight.T).reshape(-1) + bias.float(), y.float().reshape(-1)).item()
    return Probe(weight.cpu(), bias.float().reshape(1).cpu(), chosen, scores, loss,
                 time.perf_counter() - started, "ridge")  # fmt: skip
