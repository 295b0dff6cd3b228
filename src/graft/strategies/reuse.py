"""Whether a run's stages train on stored activations: the head's features, or a cut's output."""

from __future__ import annotations

import torch
from torch import nn

from graft.config import Config
from graft.strategies.cuts import Cut, find_cut
from graft.strategies.groups import LayerGroup
from graft.strategies.stages import Stage


def use_feature_cache(
    cfg: Config, stages: list[Stage], head: nn.Module | None, augmented: bool = True
) -> bool:
    """Head-only stages train on cached features when the images would look the same every epoch
    (augmentation off), for gradual's short head-only warm-up, or when asked (`cache_features: on`);
    never with train_bn, where the backbone's BatchNorm statistics change every step."""
    if head is None or not any(s.head_only for s in stages) or not can_store(cfg):
        return False
    return cfg.strategy.cache_features == "on" or cfg.strategy.name == "gradual" or not augmented


def can_store(cfg: Config) -> bool:
    """Whether frozen parts may be computed once at all: not under train_bn, whose BatchNorm statistics
    move every step (yesterday's activations are stale), and not with cache_features off."""
    return not cfg.strategy.train_bn and cfg.strategy.cache_features != "off"


def use_cuts(cfg: Config, augmented: bool) -> bool:
    """Stages that train the top of the backbone start from cached activations when the images look the
    same every epoch (augmentation off) or when asked (`cache_features: on`, which trades those stages'
    augmentation for speed); never with train_bn."""
    return can_store(cfg) and (cfg.strategy.cache_features == "on" or not augmented)


def stage_cuts(
    stages: list[Stage],
    groups: list[LayerGroup],
    model: nn.Module,
    images: torch.Tensor,
    samples: int,
    max_gb: float,
    tokens: int = 0,
) -> dict[int, Cut]:
    """The verified cut of each stage that trains part of the backbone above frozen groups, top stages
    first while the activations of `samples` images (or `tokens` tokens of texts) fit in `max_gb` (the
    lowest cuts are the largest)."""
    cuts: dict[int, Cut] = {}
    found: dict[int, Cut | None] = {}
    budget = max_gb * 2**30
    for stage in stages:
        lowest = min(stage.trainable)
        if stage.head_only or lowest == 0:
            continue
        if lowest not in found:
            trainable = {n for g in groups[lowest:] for n in g.param_names}
            found[lowest] = find_cut(model, trainable, images)
            cut = found[lowest]
            if cut is not None:
                budget -= cut.sample_bytes * (tokens if cut.per_token else samples)
                if budget < 0:
                    break
        if found[lowest] is not None:
            cuts[stage.index] = found[lowest]
    return cuts
