"""Everything a run trains with, built from the config, in two steps with the first bundle between them:

  probe_on_data(cfg, spec)        the model on the data (training/build.py), one frozen pass over it
                                  (training/frozen.py), the head solved on its features: epoch 0
  plan_training(probed, ...)      the strategy resolved (auto: measured against the time budget,
                                  strategies/auto.py), its stages, optimizer, LR schedule, and what each
                                  epoch's batches go through (the images, or a cut's stored activations)

workflow/train.py writes the probe's bundle between the two, so every run has a good model early.
`prepare` runs both (`graft lr-find`, `graft summary`, benchmarks). Nothing here writes a file except the
feature cache, and the caller's config is never changed: each step returns the resolved config it used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from graft.config import Config, resolve_config
from graft.data.check import balance_weights
from graft.data.discover import DataSpec
from graft.data.feature_cache import pad_hidden
from graft.data.images import create_loader
from graft.models.module_input import ModelObject
from graft.models.vision import BuiltModel
from graft.strategies.advisor import Advice, advise
from graft.strategies.auto import BUDGET_FACTOR, Plan, plan_fine_tuning
from graft.strategies.cuts import Cut, Suffix
from graft.strategies.groups import LayerGroup, layer_groups
from graft.strategies.reuse import can_store, stage_cuts, use_cuts, use_feature_cache
from graft.strategies.stages import Stage, Staging, head_module, stages_from_config
from graft.training import distributed
from graft.training.build import ModelOnData, build_on_data
from graft.training.frozen import (
    FrozenPass,
    ProbeResult,
    candidate_cuts,
    cut_tap,
    measure_options,
    record_frozen,
    sample_inputs,
    set_head,
    solve_probe,
    token_count,
)
from graft.training.loop import EpochInputs
from graft.training.lr_finder import LRFinderResult, lr_range_test
from graft.training.optim import Schedule, create_optimizer, create_schedule


@dataclass
class Probed:
    """The first step's result: the model on the data, its frozen pass, and the solved head."""

    cfg: Config  # defaults for the data filled in (model, balance); strategy still as configured
    spec: DataSpec
    md: ModelOnData
    groups: list[LayerGroup]
    head: nn.Linear | None  # the head as one Linear (None: no probe, no feature cache)
    head_solved: bool  # the head starts from the probe (not from zero)
    frozen: FrozenPass
    candidates: dict[int, Cut]  # auto: top-k groups -> the cut below them
    stage_cuts: dict[int, Cut]  # a named strategy: stage index -> the cut its epochs start from
    probe: ProbeResult | None  # None on resume (the checkpoint holds the head) or without a probe
    started: float  # perf_counter() when the run began: the time budget counts from here

    # What bundling needs, named as on Prepared (workflow/bundle.py takes either).
    built = property(lambda self: self.md.built)
    model = property(lambda self: self.md.model)
    tokenizer = property(lambda self: self.md.tokenizer)


@dataclass
class Prepared:
    cfg: Config  # with every "auto" resolved: strategy, epochs, time limit, lr, img_size, num_workers
    spec: DataSpec
    built: BuiltModel
    model: nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None
    groups: list[LayerGroup]
    stages: list[Stage]
    staging: Staging
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    inputs_for: Callable[[Stage], EpochInputs]
    head: nn.Linear | None = None
    head_solved: bool = (
        False  # the head started from the probe (fixes the stages' shape, strategies/stages.py)
    )
    probe: ProbeResult | None = None
    plan: Plan | None = None  # what --strategy auto measured and decided
    advice: Advice | None = None  # probe disabled: the advisor's 2x2 table decided auto
    lr_find: LRFinderResult | None = None
    cache_note: str | None = None  # how the feature cache was used, for the console
    train_images: Dataset | None = None  # the augmented training images and the validation images, for
    val_images: Dataset | None = None  # the logs' pictures (an epoch may train on cached features instead)
    tokenizer: Any = None  # text models: saved with the bundle
    data_notes: list[str] = field(default_factory=list)  # e.g. how many texts were truncated
    class_weights: torch.Tensor | None = None  # cross-entropy weight per class (--balance loss)
    deadline: float | None = None  # perf_counter() by which training must end (the time limit)


def probe_on_data(
    cfg: Config, spec: DataSpec, resuming: bool = False, started: float | None = None,
    given: ModelObject | None = None,
) -> Probed:  # fmt: skip
    """Build, record the frozen pass, solve the head. `resuming`: the checkpoint holds the weights, so
    the head is not solved again (the pass still feeds the stages that start from stored activations).
    `given`: the nn.Module object the model is (build_on_data)."""
    started = time.perf_counter() if started is None else started
    md = build_on_data(cfg, spec, given, resuming)
    cfg = md.cfg
    groups = layer_groups(md.model)
    head = head_module(md.model, groups)
    head_solved = cfg.strategy.probe and md.built.pretrained and head is not None
    augmented = spec.modality == "image" and cfg.data.augment.enabled  # texts are never augmented
    # A named strategy's stages ([] for auto, whose stage is planned after the probe).
    named = [] if cfg.strategy.name == "auto" else stages_from_config(cfg, len(groups), head_solved)
    candidates: dict[int, Cut] = {}
    by_stage: dict[int, Cut] = {}
    if cfg.strategy.name == "auto" and head_solved:  # every way auto may fine-tune, from its cut
        candidates = (
            candidate_cuts(groups, md, spec, cfg.strategy.cache_max_gb) if use_cuts(cfg, False) else {}
        )
    elif named and can_store(cfg) and _above_frozen(named):
        # Stages above a frozen prefix: from its stored output, or (augmentation on) validation alone.
        by_stage = stage_cuts(named, groups, md.model, sample_inputs(md, spec), len(spec.train) + len(spec.val),
                              cfg.strategy.cache_max_gb, token_count(md, spec))  # fmt: skip
    cuts = list(dict.fromkeys([*candidates.values(), *by_stage.values()]))
    val_only = frozenset() if use_cuts(cfg, augmented) else frozenset(cut_tap(c) for c in by_stage.values())
    head_train = (head_solved and not resuming) or use_feature_cache(cfg, named, head, augmented)
    head_val = can_store(cfg) and any(stage.head_only for stage in named)  # head-only epochs validate on it
    wants_head = head is not None and (head_train or head_val)
    if not head_train:
        val_only |= {"head"}
    frozen = record_frozen(cfg, spec, md, head if wants_head else None, cuts, val_only)
    probe = None
    if head_solved and not resuming:
        probe = solve_probe(
            frozen, spec.task, len(spec.classes), _loss_weights(cfg, spec), cfg.train.seed, started
        )
        set_head(head, probe.probe)
    return Probed(cfg, spec, md, groups, head, head_solved, frozen, candidates, by_stage, probe, started)


def plan_training(probed: Probed) -> Prepared:
    """Resolve the strategy and build what the loop needs."""
    cfg, spec, md, groups, head = probed.cfg, probed.spec, probed.md, probed.groups, probed.head
    model, device = md.model, md.device
    cfg, plan, advice = resolve_strategy(probed)
    stages = stages_from_config(cfg, len(groups), probed.head_solved)
    batch, seed = cfg.train.batch_size, cfg.train.seed
    draw_weights, loss_weights = balance_weights(cfg.data.balance, spec)  # --balance sampler / loss

    def make_loader(data: Dataset, train: bool, lengths: list[int] | None = None) -> DataLoader:
        if lengths is None:  # fixed-size activations: the head's features, a CNN's cut
            return create_loader(data, batch, train, 0, seed, weights=draw_weights)
        # texts' hidden states: padded per batch, bucketed by length like the token batches
        bucket = lengths if cfg.data.bucket_by_length or not train else None
        return create_loader(
            data, batch, train, 0, seed, collate_fn=pad_hidden, lengths=bucket, weights=draw_weights
        )

    cuts = _cuts_for(probed, plan)
    cached = probed.frozen.loaders(["head", *(cut_tap(c) for c in cuts.values())], make_loader)
    if (
        not _head_only_cached(cfg, probed, stages) and "head" in cached
    ):  # the head's features: validation only
        cached["head"] = (None, cached["head"][1])
    make_staging = partial(Staging, groups=groups, stages=stages, make_optimizer=partial(create_optimizer, cfg.optim),
                           weight_decay=cfg.optim.weight_decay, train_bn=cfg.strategy.train_bn,
                           head_solved=probed.head_solved)  # fmt: skip
    lr_result = None
    if cfg.optim.lr == "auto":
        on_cache = cached.get("head", (None, None))[0] is not None and stages[-1].head_only
        loader = cached["head"][0] if on_cache else md.train_loader
        lr_result = lr_range_test(
            model, head if on_cache else None, make_staging, cfg, loader, device, md.amp_dtype, spec.task
        )
        cfg = _resolved(cfg, {"optim.lr": distributed.broadcast(float(f"{lr_result.suggestion:.2g}"))})
    staging = make_staging(model, base_lr=cfg.optim.lr)
    optimizer = staging.build(0)

    # Under torchrun: each rank trains and evaluates its share of every epoch, through a DDP wrapper
    # rebuilt whenever a stage changes which parameters train (distributed.Wrapper).
    for loader in (
        md.train_loader,
        md.val_loader,
        *(x for pair in cached.values() for x in pair if x is not None),
    ):
        distributed.shard_loader(loader)
    ddp = distributed.Wrapper()
    suffixes = {i: Suffix(model, cut) for i, cut in cuts.items()}

    def inputs_for(stage: Stage) -> EpochInputs:
        # Where an epoch's stored activations exist for training (no augmentation), train and validate
        # on them; where they exist for validation only, train through the (augmented) images and
        # validate above the frozen part; else the model, on images or tokens.
        tap = (
            "head"
            if stage.head_only and "head" in cached
            else cut_tap(cuts[stage.index])
            if stage.index in cuts
            else None
        )
        train_on, val_on = cached.get(tap, (None, None))
        top = head if tap == "head" else suffixes.get(stage.index)
        if train_on is not None:
            return EpochInputs(
                ddp(top, stage.index),
                train_on,
                val_on,
                nn.Module.train if tap == "head" else staging.train_mode,
            )
        net = ddp(model, stage.index)
        if val_on is not None:
            return EpochInputs(net, md.train_loader, val_on, staging.train_mode, val_net=top)
        return EpochInputs(net, md.train_loader, md.val_loader, staging.train_mode)

    steps_per_epoch = math.ceil(len(md.train_loader) / cfg.train.accum_steps)
    schedule = create_schedule(cfg.optim, steps_per_epoch, max(1, cfg.train.epochs))
    # GradScaler only matters for fp16; with bf16 or fp32 it is a pass-through.
    scaler = torch.amp.GradScaler(device.type, enabled=md.amp_dtype == torch.float16)
    limit = cfg.train.time_limit
    return Prepared(
        cfg, spec, md.built, model, device, md.amp_dtype, groups, stages, staging, optimizer, schedule, scaler,
        inputs_for, head, probed.head_solved, probed.probe, plan, advice, lr_result,
        _cache_note(probed.frozen, stages, cuts, cached, probed.probe is not None),
        train_images=md.train_loader.dataset if spec.modality == "image" else None,
        val_images=md.val_loader.dataset if spec.modality == "image" else None,
        tokenizer=md.tokenizer, data_notes=md.notes,
        class_weights=None if loss_weights is None else torch.tensor(loss_weights, device=device),
        deadline=None if limit is None else probed.started + limit,
    )  # fmt: skip


def prepare(cfg: Config, spec: DataSpec) -> Prepared:
    """Both steps at once, with no bundle in between."""
    return plan_training(probe_on_data(cfg, spec))


def resolve_strategy(probed: Probed) -> tuple[Config, Plan | None, Advice | None]:
    """The run's config with `auto` resolved: strategy, epochs and time limit (strategies/auto.py), or,
    with the probe disabled, the advisor's 2x2 table."""
    cfg, spec, md = probed.cfg, probed.spec, probed.md
    auto_limit = cfg.train.time_limit == "auto"
    if cfg.strategy.name != "auto":
        updates = {"train.time_limit": None} if auto_limit else {}
        if cfg.strategy.name == "linear-probe" and probed.head_solved:  # the solved head is the probe
            updates["train.epochs"] = 0
        return _resolved(cfg, updates), None, None
    if not probed.head_solved:  # no probe to start from: the advisor's table, as before the probe existed
        advice = advise(
            spec, md.model, probed.head, md.eval_loader, md.built.pretrained, md.device, cfg.train.seed
        )
        advice = distributed.broadcast(advice)
        return _resolved(cfg, {"strategy.name": advice.strategy} | ({"train.time_limit": None} if auto_limit else {})), None, advice  # fmt: skip
    # The budget follows what the frozen-features recipe costs on this machine (the frozen pass as if the
    # cache were cold, so a warm cache does not shrink it, and the solved head).
    # Rank 0's measurement for every rank: the deadline must be the same everywhere under torchrun.
    recipe = distributed.broadcast(probed.frozen.compute_seconds + probed.probe.probe.seconds)
    limit = BUDGET_FACTOR * recipe if auto_limit else cfg.train.time_limit
    elapsed = time.perf_counter() - probed.started
    # What the run still has to do after training besides the best model's validation pass (each option
    # counts its own): calibrating and writing the bundle, rendering the report from those logits.
    reserve = 2.0
    budget = limit - elapsed - reserve

    def decide() -> Plan:
        options = measure_options(
            cfg, spec, md, probed.groups, probed.candidates, probed.frozen, budget, cfg.train.epochs
        )
        return plan_fine_tuning(options, limit - (time.perf_counter() - probed.started) - reserve,
                                probed.probe.record.get("val_acc", 0.0), cfg.train.epochs)  # fmt: skip

    plan = distributed.broadcast(decide() if distributed.is_main() else None)
    updates = {"train.time_limit": round(limit, 1), "train.epochs": plan.epochs}
    if plan.groups == 0:
        updates["strategy.name"] = "linear-probe"
    else:
        updates |= {"strategy.name": "discriminative", "strategy.train_groups": plan.groups}
    return _resolved(cfg, updates), plan, None


def _resolved(cfg: Config, updates: dict[str, Any]) -> Config:
    """A new, validated config: `cfg` with dotted-key `updates`."""
    return resolve_config(overrides=updates, base=cfg) if updates else cfg


def _cuts_for(probed: Probed, plan: Plan | None) -> dict[int, Cut]:
    """Stage index -> the cut its epochs start from (auto: its one stage, from the chosen option's cut)."""
    if plan is not None:
        cut = probed.candidates.get(plan.groups)
        return {0: cut} if cut is not None else {}
    return probed.stage_cuts


def _above_frozen(stages: list[Stage]) -> bool:
    """Whether a stage trains part of the backbone above frozen groups (it may start from a cut)."""
    return any(not stage.head_only and min(stage.trainable) > 0 for stage in stages)


def _head_only_cached(cfg: Config, probed: Probed, stages: list[Stage]) -> bool:
    augmented = probed.spec.modality == "image" and cfg.data.augment.enabled
    return probed.frozen.has("head") and use_feature_cache(cfg, stages, probed.head, augmented)


def _loss_weights(cfg: Config, spec: DataSpec) -> torch.Tensor | None:
    weights = balance_weights(cfg.data.balance, spec)[1]
    return None if weights is None else torch.tensor(weights)


def _cache_note(
    frozen: FrozenPass, stages: list[Stage], cuts: dict[int, Cut], cached: dict[str, tuple], solved: bool
) -> str | None:
    if not frozen.tensors:
        return None
    verb = "loaded from the cache" if frozen.hit else "computed and cached"
    uses = ["the head solved on them"] if solved else []
    if cached.get("head", (None, None))[0] is not None:
        uses.append("head-only epochs train on the head's inputs")
    for i, cut in cuts.items():
        start = f"from epoch {stages[i].start_epoch + 1}" if i < len(stages) else "then"
        trains = cached.get(cut_tap(cut), (None, None))[0] is not None
        uses.append(f"{start} {'start' if trains else 'validation starts'} after {cut.output}")
    return f"frozen features {verb} in {frozen.seconds:.1f}s: " + ", ".join(uses)


def advise_on_data(cfg: Config, spec: DataSpec) -> tuple[Advice, ModelOnData]:
    """`graft advise`: measure the data on the model, without building anything for training."""
    md = build_on_data(cfg, spec)
    head = head_module(md.model, layer_groups(md.model))
    return advise(spec, md.model, head, md.eval_loader, md.built.pretrained, md.device, md.cfg.train.seed), md
