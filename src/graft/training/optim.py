"""Optimizer and learning-rate schedule.

The optimizer is built from explicit param groups (see strategies/stages.py: trainable layer groups only,
no weight decay on biases and norm layers). The schedule is a pure function of the optimizer step,
applied to every param group as `lr = base_lr * factor(step)`: nothing to save beyond the step count,
and a param group added at an unfreeze follows the same curve at once. (torch's LambdaLR records
base_lrs when it is built, so groups added later would silently never be scheduled.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from timm.optim import create_optimizer_v2

from graft.config import OptimConfig


def create_optimizer(cfg: OptimConfig, param_groups: list[dict]) -> torch.optim.Optimizer:
    """Every group carries its own lr and weight_decay; the optimizer-wide defaults only fill gaps."""
    lr = param_groups[0]["lr"]
    if cfg.name == "sgd":  # timm's "sgd" is Nesterov; "momentum" is the plain SGD users expect
        return create_optimizer_v2(
            param_groups, opt="momentum", lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
    return create_optimizer_v2(param_groups, opt=cfg.name, lr=lr, weight_decay=cfg.weight_decay)


@dataclass(frozen=True)
class Schedule:
    total_steps: int
    warmup_steps: int
    min_ratio: float
    kind: str = "cosine"

    def factor(self, step: int) -> float:
        return lr_factor(step, self.total_steps, self.warmup_steps, self.min_ratio, self.kind)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set every group's LR for optimizer step `step`.

        A group that joined later (an unfreeze, `start_step` > 0) warms up from zero over `warmup_steps`
        like the run did: Adam's first updates are about lr-sized on every weight whatever the gradient,
        a jolt to pretrained weights at full LR (measured: accuracy fell after unfreezes without it).
        """
        factor = self.factor(step)
        for group in optimizer.param_groups:
            start = group.get("start_step", 0)
            ramp = (
                min(1.0, (step - start + 1) / self.warmup_steps) if start > 0 and self.warmup_steps else 1.0
            )
            group["lr"] = group["base_lr"] * factor * ramp

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, min_ratio: float, kind: str = "cosine"
) -> float:
    """Multiplier of the base LR at optimizer step `step`: linear warmup, then cosine to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    # +1: the last step (total_steps - 1) is taken at exactly the floor, the first after warmup just below peak.
    progress = min(1.0, (step - warmup_steps + 1) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def create_schedule(cfg: OptimConfig, steps_per_epoch: int, epochs: int) -> Schedule:
    """Stepped once per optimizer step (not per epoch), so warmup works on tiny datasets too."""
    total = steps_per_epoch * epochs
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    return Schedule(total, warmup, cfg.min_lr_ratio, cfg.scheduler)
