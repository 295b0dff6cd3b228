"""Optimizer and learning-rate schedule.

The optimizer is any of timm's (`timm.optim.create_optimizer_v2`), built from graft's explicit param groups
(see strategies/stages.py: trainable layer groups only, each with its own LR, no weight decay on biases and
norm layers). The schedule is a pure function of the optimizer step,
applied to every param group as `lr = base_lr * factor(step)`: nothing to save beyond the step count,
and a param group added at an unfreeze follows the same curve at once. (torch's LambdaLR records
base_lrs when it is built, so groups added later would silently never be scheduled.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from timm.optim import create_optimizer_v2, list_optimizers

from graft.config import OptimConfig
from graft.errors import GraftError, did_you_mean

# graft's "sgd" is plain SGD with momentum (timm's "momentum"); timm's own "sgd" is Nesterov: "nesterov".
TIMM_NAMES = {"sgd": "momentum"}
# timm optimizers graft's loop cannot drive: their step needs what a plain backward() does not give.
UNSUPPORTED = {"adahessian": "it needs second-order gradients (backward with create_graph=True)"}
LOOKAHEAD = "lookahead_"  # timm's wrapper around any of them, e.g. lookahead_adamw


def optimizer_names() -> list[str]:
    """The names --opt accepts: timm's optimizers (`timm.optim.list_optimizers()`) that graft can drive."""
    return [name for name in list_optimizers() if name not in UNSUPPORTED]


def check_optimizer_name(name: str) -> str:
    """timm's name for `name` (OptimConfig.name), or one GraftError line listing every valid name."""
    base = name.removeprefix(LOOKAHEAD)
    if base in UNSUPPORTED:
        raise GraftError(f"optimizer {base!r} is not supported: {UNSUPPORTED[base]}")
    names = optimizer_names()
    if base not in names:
        raise GraftError(
            f"unknown optimizer {name!r}{did_you_mean(base, names)}; valid (timm's, also as "
            f"{LOOKAHEAD}NAME): {', '.join(names)}"
        )
    return name[: len(name) - len(base)] + TIMM_NAMES.get(base, base)


def create_optimizer(cfg: OptimConfig, param_groups: list[dict]) -> torch.optim.Optimizer:
    """timm's optimizer `cfg.name` over graft's explicit param groups, as given: every group carries its
    own lr and weight_decay (0 on biases and norms), the optimizer-wide defaults only fill gaps."""
    opt = check_optimizer_name(cfg.name)
    try:
        return create_optimizer_v2(
            param_groups, opt=opt, lr=param_groups[0]["lr"], weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
        )  # fmt: skip
    except (ImportError, AssertionError) as err:  # bitsandbytes/APEX optimizers: a package or CUDA missing
        raise GraftError(f"optimizer {cfg.name!r}: {err}") from None


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
