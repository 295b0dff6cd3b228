"""Optimizer and learning-rate schedule.

The optimizer is built over trainable parameters only (timm's factory skips requires_grad=False), with
no weight decay on biases and norm layers. The schedule is a pure function of the optimizer step.
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from graft.config import OptimConfig


def create_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.name == "sgd":  # timm's "sgd" is Nesterov; "momentum" is the plain SGD users expect
        return create_optimizer_v2(
            model, opt="momentum", lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
    return create_optimizer_v2(model, opt=cfg.name, lr=cfg.lr, weight_decay=cfg.weight_decay)


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


def create_scheduler(
    cfg: OptimConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int
) -> LambdaLR:
    """Stepped once per optimizer step (not per epoch), so warmup works on tiny datasets too."""
    total = steps_per_epoch * epochs
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    return LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, cfg.min_lr_ratio, cfg.scheduler))
