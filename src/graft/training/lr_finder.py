"""Learning-rate range test (Smith 2015; fastai's lr_find): raise the LR exponentially over a short run
and watch the loss. It runs on a copy of the model with its own optimizer (the caller makes both) and
restores every RNG it touched, so the real model, optimizer and the run that follows are as without it.
"""

from __future__ import annotations

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

from graft.training.runtime import autocast


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # exponentially smoothed, bias-corrected
    suggestion: float  # LR at the minimum smoothed loss / 10: a step back from where loss stops falling
    steepest: float  # LR where the smoothed loss falls fastest (per log-LR)

    def plot(self, path: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses)
        ax.axvline(
            self.suggestion, color="tab:green", linestyle="--", label=f"suggested {self.suggestion:.2g}"
        )
        ax.axvline(self.steepest, color="tab:orange", linestyle=":", label=f"steepest {self.steepest:.2g}")
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
        for i in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (i / max(1, steps - 1))
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            x, y = next(batches)
            with autocast(device, amp_dtype):
                loss = F.cross_entropy(net(x.to(device)).float(), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            average = smoothing * average + (1 - smoothing) * loss.item()
            smoothed = average / (1 - smoothing ** (i + 1))
            if not math.isfinite(smoothed) or (i > 10 and smoothed > diverge * best):
                break
            best = min(best, smoothed)
            lrs.append(lr)
            losses.append(smoothed)
    finally:
        random.setstate(rng_state[0])
        np.random.set_state(rng_state[1])
        torch.set_rng_state(rng_state[2])
    return LRFinderResult(lrs, losses, *_suggest(lrs, losses))


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    if len(lrs) < 3:
        return lrs[0] if lrs else 1e-3, lrs[0] if lrs else 1e-3
    lowest = min(range(len(losses)), key=losses.__getitem__)
    log_lrs = np.log10(lrs)
    slopes = np.gradient(np.array(losses), log_lrs)
    steepest = int(np.argmin(slopes[: max(lowest, 1)]))
    return lrs[lowest] / 10, lrs[steepest]


def _cycle(loader: DataLoader):
    while True:
        yield from loader
