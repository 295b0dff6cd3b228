"""From config to a concrete strategy for one run: resolve `auto`, decide on the feature cache and cuts."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from graft.config import Config
from graft.data.discover import DataSpec, Sample
from graft.strategies.advisor import Advice, advise
from graft.strategies.cuts import Cut, find_cut
from graft.strategies.groups import LayerGroup
from graft.strategies.plan import Stage


def resolve_strategy(
    cfg: Config,
    spec: DataSpec,
    model: nn.Module,
    head: nn.Module | None,
    pretrained: bool,
    eval_loader: Callable[[list[Sample]], DataLoader],
    device: torch.device,
) -> tuple[str, Advice | None]:
    """The configured strategy, or for `auto` the advisor's choice (with its measurements)."""
    if cfg.strategy.name != "auto":
        return cfg.strategy.name, None
    advice = advise(spec, model, head, eval_loader, pretrained, device, cfg.train.seed)
    return advice.strategy, advice


def use_feature_cache(
    cfg: Config, strategy: str, stages: list[Stage], head: nn.Module | None, augmented: bool = True
) -> bool:
    """Head-only stages train on cached features when the images would look the same every epoch
    (augmentation off), for gradual's short head-only warm-up, or when asked (`cache_features: on`);
    never with train_bn, where the backbone's BatchNorm statistics change every step."""
    if head is None or not any(s.head_only for s in stages) or cfg.strategy.cache_features == "off":
        return False
    if cfg.strategy.train_bn:  # BatchNorm statistics move every step: yesterday's features are stale
        return False
    return cfg.strategy.cache_features == "on" or strategy == "gradual" or not augmented


def use_cuts(cfg: Config, augmented: bool) -> bool:
    """Stages that train the top of the backbone start from cached activations when the images look the
    same every epoch (augmentation off) or when asked (`cache_features: on`, which trades those stages'
    augmentation for speed); never with train_bn."""
    s = cfg.strategy
    if s.train_bn or s.cache_features == "off":  # BatchNorm statistics move every step under train_bn
        return False
    return s.cache_features == "on" or not augmented


def stage_cuts(
    stages: list[Stage],
    groups: list[LayerGroup],
    model: nn.Module,
    images: torch.Tensor,
    samples: int,
    max_gb: float,
) -> dict[int, Cut]:
    """The verified cut of each stage that trains part of the backbone above frozen groups, top stages
    first while the activations of `samples` images fit in `max_gb` (the lowest cuts are the largest)."""
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
                budget -= cut.sample_bytes * samples
                if budget < 0:
                    break
        if found[lowest] is not None:
            cuts[stage.index] = found[lowest]
    return cuts
