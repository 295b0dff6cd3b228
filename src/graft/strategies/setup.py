"""From config to a concrete strategy for one run: resolve `auto`, decide on the feature cache."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from graft.config import Config
from graft.data.discover import DataSpec, Sample
from graft.strategies.advisor import Advice, advise
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
