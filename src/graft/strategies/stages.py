"""Strategies as stages, and applying a stage to a model and its optimizer.

A strategy is a list of `Stage`s, each saying from which epoch which layer groups train, at which
fraction of the base LR. `plan_stages` is a pure function of the config and the number of groups:

  linear-probe    one stage: the head only
  full            one stage: every group at the base LR
  discriminative  one stage: every group, LR x layer_decay^(groups above it): lower toward the input
  gradual         the head first; then every `unfreeze_every` epochs (or at `unfreeze_at`), the next
                  `unfreeze_groups` groups from the top join, each at its own decayed LR (ULMFiT); by
                  default as many per unfreeze as it takes for every group to train by the last one.
                  When the head was solved first (the default), the first groups join at epoch 0.

full and discriminative may train only the top `train_groups` backbone groups (what auto chooses).

`Staging` makes a stage true: frozen parameters get requires_grad=False and are never in the optimizer
(no weight decay or momentum can move them); newly unfrozen groups join the optimizer as new param
groups, so the groups already training keep their optimizer state; frozen sub-modules run in eval mode,
so their BatchNorm statistics and dropout stay fixed.

BatchNorm layers of groups that were frozen when training started keep their pretrained running
statistics for the whole run, also after their group unfreezes (their weights do train). Switching them
to batch statistics at an unfreeze changes every activation above them at once, and measured on the
demo task that shock cost accuracy at each unfreeze (83% -> 60% over four unfreezes; with statistics
kept: 47% -> 97.5%). This is the Keras transfer-learning guide's rule. `train_bn=True` instead runs every
BatchNorm layer in train mode from the first step (fastai/Lightning style): statistics adapt to the new
data everywhere, while frozen weights stay frozen.
The optimizer for stage k is rebuilt by replaying the stages 0..k, which is how a checkpoint taken after
an unfreeze restores exactly the param groups it was saved with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from graft.strategies.groups import LayerGroup

STRATEGIES = ("linear-probe", "full", "discriminative", "gradual")
# After the probe the head sits at its optimum for the frozen features; at the full LR, AdamW's first
# steps (about lr-sized on every weight) throw it off while the backbone has barely moved. At 0.1x it
# follows the adapting backbone instead. Measured from the solved head, 5 epochs of the top group on the
# four photo sets: validation accuracy +1.6 points on average over the probe with the head at 0.1x,
# +1.3 at 1x (whose first epoch dropped up to 5 points below the probe).
SOLVED_HEAD_LR = 0.1


@dataclass(frozen=True)
class Stage:
    index: int
    start_epoch: int
    trainable: tuple[int, ...]  # layer-group indices, input side first; the head is the last group
    lr_scales: tuple[float, ...]  # per trainable group, same order

    @property
    def head_only(self) -> bool:
        return len(self.trainable) == 1


def plan_stages(
    strategy: str,
    num_groups: int,
    epochs: int,
    layer_decay: float = 0.6,
    unfreeze_every: int = 1,
    unfreeze_at: list[int] | None = None,
    unfreeze_groups: int | None = None,
    train_groups: int | None = None,
    head_solved: bool = False,
) -> list[Stage]:
    """The stages of `strategy` over `epochs` epochs for a model of `num_groups` layer groups.

    `train_groups` (full, discriminative): only that many backbone groups from the top train. `head_solved`:
    the head was solved on frozen features before epoch 0 (strategies/probe.py), so gradual needs no
    head-only warm-up and unfreezes its first groups at epoch 0."""
    head = num_groups - 1

    def scales(groups: list[int]) -> tuple[float, ...]:
        body = tuple(layer_decay ** (head - g) if strategy != "full" else 1.0 for g in groups[:-1])
        return body + ((SOLVED_HEAD_LR if head_solved else 1.0),)

    if strategy == "linear-probe":
        return [Stage(0, 0, (head,), (1.0,))]
    if strategy in ("full", "discriminative"):
        lowest = 0 if train_groups is None else max(0, head - train_groups)
        trained = list(range(lowest, num_groups))
        return [Stage(0, 0, tuple(trained), scales(trained))]
    if strategy != "gradual":
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    first = 0 if head_solved else 1
    starts = (
        sorted(unfreeze_at) if unfreeze_at else list(range(first * unfreeze_every, epochs, unfreeze_every))
    )
    starts = [e for e in starts if first <= e < epochs]
    if unfreeze_groups is None:  # spread the backbone over the unfreezes the run has room for
        unfreeze_groups = max(1, math.ceil(head / max(1, len(starts))))
    stages: list[Stage] = []
    trainable = [head]
    for epoch in starts:
        lowest = trainable[0]
        if lowest == 0 or (stages and epoch <= stages[-1].start_epoch):
            continue
        trainable = list(range(max(0, lowest - unfreeze_groups), lowest)) + trainable
        stages.append(Stage(len(stages) + (not head_solved), epoch, tuple(trainable), scales(trainable)))
    if not stages or stages[0].start_epoch > 0:  # the head alone until the first unfreeze
        stages = [Stage(0, 0, (head,), (SOLVED_HEAD_LR if head_solved else 1.0,))] + [
            Stage(s.index + head_solved, s.start_epoch, s.trainable, s.lr_scales) for s in stages
        ]
    return stages


def stages_from_config(cfg, num_groups: int, head_solved: bool) -> list[Stage]:
    """`plan_stages` for a run's config (graft.config.Config): the one place its strategy fields are read."""
    s = cfg.strategy
    return plan_stages(s.name, num_groups, cfg.train.epochs, s.layer_decay, s.unfreeze_every, s.unfreeze_at,
                       s.unfreeze_groups, s.train_groups, head_solved)  # fmt: skip


def stage_at(stages: list[Stage], epoch: int) -> Stage:
    return [s for s in stages if s.start_epoch <= epoch][-1]


class Staging:
    """Applies stages to one model: freezing, optimizer param groups, train/eval modes."""

    def __init__(
        self,
        model: nn.Module,
        *,
        groups: list[LayerGroup],
        stages: list[Stage],
        make_optimizer: Callable[[list[dict]], torch.optim.Optimizer],
        base_lr: float,
        weight_decay: float,
        train_bn: bool = False,
        head_solved: bool = False,
    ):
        self.model, self.groups, self.stages = model, groups, stages
        self.make_optimizer, self.base_lr = make_optimizer, base_lr
        self.weight_decay, self.train_bn = weight_decay, train_bn
        self.params = dict(model.named_parameters())
        no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
        # timm's rule: no weight decay on biases, norm weights and other 1-D tensors, or what the model lists.
        self.decays = {
            n: not (p.ndim <= 1 or n.endswith(".bias") or n in no_decay) for n, p in self.params.items()
        }
        self.frozen_modules: list[nn.Module] = []
        # A solved head means the backbone was frozen for the probe: every backbone group counts as
        # frozen at the start, so every BatchNorm keeps its pretrained statistics (measured on the four
        # photo sets: adapting them from a cut lost 1.5 points of the fine-tune's gain on average).
        started = (len(groups) - 1,) if head_solved else stages[0].trainable
        at_start = {n for g in started for n in groups[g].param_names}
        self.kept_statistics = [  # BatchNorm layers of groups frozen at the start: pretrained statistics, always
            m
            for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and any(f"{name}.{p}" not in at_start for p, _ in m.named_parameters())
        ]

    def build(self, stage_index: int) -> torch.optim.Optimizer:
        """Freeze for `stage_index` and return an optimizer whose param groups are those stages 0..k add."""
        optimizer = self.make_optimizer(self._param_groups(self.stages[0], ()))
        for previous, stage in zip(self.stages, self.stages[1 : stage_index + 1]):
            for group in self._param_groups(stage, previous.trainable):
                optimizer.add_param_group(group)
        self._freeze(self.stages[stage_index])
        return optimizer

    def enter(self, stage: Stage, previous: Stage, optimizer: torch.optim.Optimizer, step: int) -> list[str]:
        """Move from `previous` to `stage` in place at optimizer step `step`: unfreeze, add the new groups
        (they warm up from `step`, see Schedule.apply); returns their names."""
        added = self._param_groups(stage, previous.trainable)
        for group in added:
            optimizer.add_param_group({**group, "start_step": step})
        self._freeze(stage)
        return list(dict.fromkeys(g["name"].split("/")[0] for g in added))

    def train_mode(self, model: nn.Module) -> None:
        """model.train(), except: frozen sub-modules run in eval (BatchNorm statistics and dropout hold), and
        BatchNorm layers of groups frozen at the start keep their statistics; with train_bn, every
        BatchNorm layer trains its statistics instead."""
        model.train()
        for module in self.frozen_modules:
            module.eval()
        for bn in self.kept_statistics:
            bn.eval()
        if self.train_bn:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()

    def _param_groups(self, stage: Stage, already: tuple[int, ...]) -> list[dict]:
        groups = []
        for index, scale in zip(stage.trainable, stage.lr_scales):
            if index in already:
                continue
            layer = self.groups[index]
            for decay in (True, False):
                names = [n for n in layer.param_names if self.decays[n] == decay]
                if names:
                    groups.append(
                        {
                            "params": [self.params[n] for n in names],
                            "lr": self.base_lr * scale,
                            "base_lr": self.base_lr * scale,  # the schedule multiplies this each step
                            "weight_decay": self.weight_decay if decay else 0.0,
                            "name": layer.name if decay else f"{layer.name}/no_decay",
                        }
                    )
        return groups

    def _freeze(self, stage: Stage) -> None:
        trainable = {n for g in stage.trainable for n in self.groups[g].param_names}
        for name, param in self.params.items():
            param.requires_grad_(name in trainable)
        self.frozen_modules = _frozen_subtrees(self.model)


def head_module(model: nn.Module, groups: list[LayerGroup]) -> nn.Module | None:
    """The head as one Linear module (it can train on cached features), or None (e.g. distilled 2-head ViTs)."""
    names = {n.rpartition(".")[0] for n in groups[-1].param_names}
    if len(names) != 1:
        return None
    module = model.get_submodule(names.pop())
    return module if isinstance(module, nn.Linear) else None


def describe(strategy: str, stages: list[Stage], groups: list[LayerGroup]) -> str:
    """One line: 'gradual: head, then +blocks.6 at epoch 2 (lr x0.6), +blocks.5 at epoch 3 (x0.36), ...'."""
    first = stages[0]
    if strategy == "linear-probe":
        return f"linear-probe: head only, {len(groups) - 1} backbone groups frozen"
    low = groups[first.trainable[0]].name
    if len(first.trainable) == len(groups):
        trained = f"all {len(groups)} groups"
    else:
        trained = f"the head and the top {len(first.trainable) - 1} of {len(groups) - 1} backbone groups"
    if strategy == "full":
        head = "" if first.lr_scales[-1] == 1 else f" (the solved head at x{first.lr_scales[-1]:.3g})"
        return f"full: {trained} at the base LR{head}"
    if strategy == "discriminative":
        top = groups[first.trainable[-2]].name
        decayed = f"x{first.lr_scales[0]:.3g} at {low}" + (
            f" up to x{first.lr_scales[-2]:.3g} at {top}" if top != low else ""
        )
        return f"discriminative: {trained}, LR {decayed}, x{first.lr_scales[-1]:.3g} at the head"
    steps = []
    for previous, stage in zip(stages, stages[1:]):
        new = [i for i in stage.trainable if i not in previous.trainable]
        scale = stage.lr_scales[stage.trainable.index(new[0])]
        steps.append(
            f"+{'+'.join(groups[i].name for i in new)} at epoch {stage.start_epoch + 1} (lr x{scale:.3g})"
        )
    shown = ", ".join(steps[:3]) + (f", ... ({len(steps)} unfreezes)" if len(steps) > 3 else "")
    return "gradual: head only" + (f", then {shown}" if steps else " (no epoch left to unfreeze in)")


def _frozen_subtrees(model: nn.Module) -> list[nn.Module]:
    """The largest sub-modules whose parameters are all frozen (each listed once, not their children)."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if any(name.startswith(f"{outer}.") for outer, _ in found if outer):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found.append((name, module))
    return [m for _, m in found]
