"""Learning-rate range test (Smith 2015; fastai's lr_find): raise the LR exponentially over a short run
and watch the loss. It runs on a copy of the model with its own optimizer (the caller makes both) and
restores every RNG it touched, so the real model, optimizer and the run that follows are as without it.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from graft.config import Config
from graft.progress import step_bar
from graft.runtime import autocast, to_device
from graft.strategies.stages import Staging
from graft.tasks import Task
from graft.training.optim import create_optimizer


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # exponentially smoothed, bias-corrected
    suggestion: float  # where the smoothed loss falls fastest, at most 1/3 of the LR at its minimum
    min_over_10: float  # the LR at the lowest loss, divided by 10 (the older rule of thumb)

    def plot(self, path: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses)
        ax.axvline(
            self.suggestion, color="tab:green", linestyle="--", label=f"suggested {self.suggestion:.2g}"
        )
        ax.axvline(
            self.min_over_10, color="tab:orange", linestyle=":", label=f"min/10 {self.min_over_10:.2g}"
        )
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="LR range test")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def find_lr(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_mode: Callable[[nn.Module], None],
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.98,
    diverge: float = 4.0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> LRFinderResult:
    """Sweep `optimizer`'s LR from `start_lr` to `end_lr` over `steps` batches of training `net`.

    `net` must be a copy the caller can throw away. Param groups keep their ratios (discriminative LRs):
    each group's LR is the swept LR times its base_lr / the largest base_lr.
    """
    rng_state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    top = max(g.get("base_lr", g["lr"]) for g in optimizer.param_groups)
    ratios = [g.get("base_lr", g["lr"]) / top for g in optimizer.param_groups]
    train_mode(net)
    lrs, losses = [], []
    average, best = 0.0, math.inf
    batches = _cycle(loader)
    try:
        with step_bar("lr     range test", steps, "steps") as bar:
            for i in range(steps):
                lr = start_lr * (end_lr / start_lr) ** (i / max(1, steps - 1))
                for group, ratio in zip(optimizer.param_groups, ratios):
                    group["lr"] = lr * ratio
                x, y = next(batches)
                with autocast(device, amp_dtype):
                    loss = loss_fn(net(to_device(x, device)).float(), y.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                average = smoothing * average + (1 - smoothing) * loss.item()
                smoothed = average / (1 - smoothing ** (i + 1))
                if not math.isfinite(smoothed) or (i > 10 and smoothed > diverge * best):
                    bar.describe("lr     range test, stopped: the loss diverged")
                    break
                best = min(best, smoothed)
                lrs.append(lr)
                losses.append(smoothed)
                bar.advance()
    finally:
        random.setstate(rng_state[0])
        np.random.set_state(rng_state[1])
        torch.set_rng_state(rng_state[2])
    return LRFinderResult(lrs, losses, *_suggest(lrs, losses))


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steepest, min/10). The steepest fall of the smoothed loss per log-LR, searched after the first 10%
    of steps (bias-corrected smoothing is noisy there) and before the minimum. fastai's "valley" rule was
    tried and rejected: a zero-initialised head makes the start of the curve flat at ln(classes), and its
    imperceptible decreases count as the "longest fall", pointing 100x too low."""
    lowest = min(range(len(losses)), key=losses.__getitem__)
    min_over_10 = lrs[lowest] / 10
    begin = len(lrs) // 10
    if lowest - begin < 3:
        return min_over_10, min_over_10
    slopes = np.gradient(np.array(losses[begin : lowest + 1]), np.log10(lrs[begin : lowest + 1]))
    steepest = lrs[begin + int(np.argmin(slopes))]
    # The smoothed loss lags the LR, so the steepest point can sit on the minimum: stay 3x below it.
    return min(steepest, lrs[lowest] / 3), min_over_10


def _cycle(loader: DataLoader):
    while True:
        yield from loader


def lr_range_test(
    model: nn.Module,
    head: nn.Module | None,
    make_staging: Callable[..., Staging],
    cfg: Config,
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    task: Task | None = None,
) -> LRFinderResult:
    """The LR range test on a copy, in the strategy's last stage: the one with the most groups training,
    where a too-high LR diverges (the head alone tolerates far more). For a linear probe on cached
    features that is the head alone, which takes seconds."""
    if head is not None:
        net = copy.deepcopy(head)
        optimizer = create_optimizer(
            cfg.optim, [{"params": list(net.parameters()), "lr": 1.0, "base_lr": 1.0}]
        )
        return find_lr(net, optimizer, nn.Module.train, loader, device, amp_dtype, loss_fn=_loss_of(task))
    net = copy.deepcopy(model)
    staging = make_staging(net, base_lr=1.0)
    optimizer = staging.build(len(staging.stages) - 1)
    return find_lr(net, optimizer, staging.train_mode, loader, device, amp_dtype, loss_fn=_loss_of(task))


def _loss_of(task: Task | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return F.cross_entropy if task is None else task.loss
