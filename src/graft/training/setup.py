"""Everything a run trains with, built from the config: model, loaders, strategy, optimizer, schedule.

`prepare` is shared by `graft train`, `graft lr-find` and `graft summary`, so all three see exactly the
same model, layer groups, stages and param groups. It writes nothing to disk except the feature cache.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from graft.config import Config, apply_task_defaults
from graft.data.check import balance_weights, resolve_balance
from graft.data.discover import DataSpec, Sample
from graft.data.feature_cache import FeatureCache, Tap, cached_loaders, default_cache_dir
from graft.data.images import ImageDataset, create_loader, create_transforms, default_num_workers
from graft.data.tokens import PadBatch, TextDataset, tokenize
from graft.errors import GraftError
from graft.models.registry import create_model
from graft.models.text import build_text
from graft.models.vision import BuiltModel
from graft.strategies.advisor import Advice, advise
from graft.strategies.cuts import Cut, Suffix
from graft.strategies.groups import LayerGroup, layer_groups
from graft.strategies.plan import Stage, Staging, head_module, plan_stages
from graft.strategies.setup import resolve_strategy, stage_cuts, use_cuts, use_feature_cache
from graft.training import distributed
from graft.training.loop import EpochInputs
from graft.training.lr_finder import LRFinderResult, find_lr
from graft.training.optim import Schedule, create_optimizer, create_schedule
from graft.training.runtime import resolve_amp, resolve_device, seed_everything


@dataclass
class Prepared:
    cfg: Config  # with every "auto" resolved: strategy, lr, img_size, num_workers
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
    advice: Advice | None = None
    lr_find: LRFinderResult | None = None
    cache_note: str | None = None  # how the feature cache was used, for the console
    train_images: Dataset | None = None  # the augmented training images and the validation images, for
    val_images: Dataset | None = None  # the logs' pictures (an epoch may train on cached features instead)
    tokenizer: Any = None  # text models: saved with the bundle
    data_notes: list[str] = field(default_factory=list)  # e.g. how many texts were truncated
    class_weights: torch.Tensor | None = None  # cross-entropy weight per class (--balance loss)


@dataclass
class ModelOnData:
    """The model built for a dataset, with its loaders: what training, advising and summaries share."""

    cfg: Config
    built: BuiltModel
    model: nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None
    train_loader: DataLoader
    val_loader: DataLoader
    eval_loader: Callable[[list[Sample]], DataLoader]  # samples -> un-augmented loader
    num_workers: int
    tokenizer: Any = None  # text models: the tokenizer (bundled with the model)
    notes: list[str] = field(default_factory=list)  # what the data preparation did, for the run header


def build_on_data(cfg: Config, spec: DataSpec) -> ModelOnData:
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = distributed.local_device(resolve_device(cfg.train.device))
    amp_dtype = resolve_amp(cfg.train.amp, device)
    apply_task_defaults(cfg, spec.task)
    cfg.data.balance = resolve_balance(cfg.data.balance, spec)
    if spec.task == "text":
        return build_text_on_data(cfg, spec, device, amp_dtype)
    m = cfg.model
    built = create_model(m.name, len(spec.classes), m.pretrained, m.weights, m.drop_rate, cfg.data.img_size)
    model = built.model.to(device)
    check_model_accepts(model, built, cfg, device)
    num_workers = default_num_workers() if cfg.data.num_workers is None else cfg.data.num_workers
    train_tf, eval_tf = create_transforms(built.data_config, cfg.data.augment)
    batch, seed, pin = cfg.train.batch_size, cfg.train.seed, device.type == "cuda"

    def eval_loader(samples: list[Sample]) -> DataLoader:
        return create_loader(ImageDataset(samples, eval_tf, seed), batch, False, num_workers, seed, pin)

    train_loader = create_loader(
        ImageDataset(spec.train, train_tf, seed), batch, True, num_workers, seed, pin,
        weights=balance_weights(cfg.data.balance, spec)[0],
    )  # fmt: skip
    return ModelOnData(
        cfg, built, model, device, amp_dtype, train_loader, eval_loader(spec.val), eval_loader, num_workers
    )


def build_text_on_data(
    cfg: Config, spec: DataSpec, device: torch.device, amp_dtype: torch.dtype | None
) -> ModelOnData:
    """The text counterpart of build_on_data: an encoder, its tokenizer, and loaders of token ids
    (tokenized once, cached) padded per batch."""
    m, d = cfg.model, cfg.data
    if m.weights is not None:
        raise GraftError("--weights applies to image architectures; for text give a model folder as --model")
    built, tokenizer = build_text(m.name, len(spec.classes), spec.classes, m.pretrained, m.drop_rate)
    model = built.model.to(device)
    cache = d.cache_dir or default_cache_dir()
    # Batches are assembled from in-memory token ids: worker processes would only add start-up time.
    num_workers = 0 if d.num_workers is None else d.num_workers
    batch, seed, pin = cfg.train.batch_size, cfg.train.seed, device.type == "cuda"
    collate = PadBatch(tokenizer.pad_token_id or 0, d.max_length if d.pad_to_max_length else None)
    notes: list[str] = []

    def text_loader(samples: list[Sample], train: bool = False, report: bool = False) -> DataLoader:
        tokens = tokenize(samples, tokenizer, d.max_length, cache)
        if tokens.truncated and report:
            notes.append(f"{tokens.truncated} of {len(samples)} {'training' if train else 'validation'} texts "
                         f"were longer than {d.max_length} tokens and were truncated (--max-length)")  # fmt: skip
        lengths = tokens.lengths() if train and d.bucket_by_length else None
        dataset = TextDataset(tokens, [s.label for s in samples])
        weights = balance_weights(d.balance, spec)[0] if train else None
        return create_loader(dataset, batch, train, num_workers, seed, pin, collate, lengths, weights)

    train_loader = text_loader(spec.train, train=True, report=True)
    val_loader = text_loader(spec.val, report=True)
    built.data_config["max_length"] = d.max_length
    return ModelOnData(cfg, built, model, device, amp_dtype, train_loader, val_loader, text_loader,
                       num_workers, tokenizer, notes)  # fmt: skip


def advise_on_data(cfg: Config, spec: DataSpec) -> tuple[Advice, ModelOnData]:
    """`graft advise`: measure the data on the model, without building anything for training."""
    md = build_on_data(cfg, spec)
    head = head_module(md.model, layer_groups(md.model))
    return advise(spec, md.model, head, md.eval_loader, md.built.pretrained, md.device, cfg.train.seed), md


def prepare(cfg: Config, spec: DataSpec) -> Prepared:
    cfg = cfg.model_copy(deep=True)
    md = build_on_data(cfg, spec)
    built, model, device, amp_dtype = md.built, md.model, md.device, md.amp_dtype
    train_loader, val_loader, eval_loader = md.train_loader, md.val_loader, md.eval_loader
    batch, seed = cfg.train.batch_size, cfg.train.seed
    groups = layer_groups(model)
    head = head_module(model, groups)
    strategy, advice = resolve_strategy(cfg, spec, model, head, built.pretrained, eval_loader, device)
    strategy = distributed.broadcast(strategy)  # `auto` measures on each GPU: rank 0's choice is the run's
    s = cfg.strategy
    stages = plan_stages(
        strategy,
        len(groups),
        cfg.train.epochs,
        s.layer_decay,
        s.unfreeze_every,
        s.unfreeze_at,
        s.unfreeze_groups,
    )
    make_staging = partial(
        Staging,
        groups=groups,
        stages=stages,
        make_optimizer=partial(create_optimizer, cfg.optim),
        weight_decay=cfg.optim.weight_decay,
        train_bn=s.train_bn,
    )

    draw_weights, loss_weights = balance_weights(cfg.data.balance, spec)  # --balance sampler / loss
    cached, cuts, cache_note = cache_frozen_parts(
        cfg, spec, md, strategy, stages, groups, head,
        lambda data, train: create_loader(data, batch, train, 0, seed, weights=draw_weights),
    )  # fmt: skip

    lr_result = None
    if cfg.optim.lr == "auto":
        on_cache = "head" in cached and stages[-1].head_only
        loader = cached["head"][0] if on_cache else train_loader
        lr_result = lr_range_test(
            model, head if on_cache else None, make_staging, cfg, loader, device, amp_dtype
        )
        cfg.optim.lr = distributed.broadcast(float(f"{lr_result.suggestion:.2g}"))

    staging = make_staging(model, base_lr=cfg.optim.lr)
    optimizer = staging.build(0)

    # Under torchrun: each rank trains and evaluates its share of every epoch, through a DDP wrapper
    # rebuilt whenever a stage changes which parameters train (distributed.Wrapper).
    for loader in (train_loader, val_loader, *(x for pair in cached.values() for x in pair)):
        distributed.shard_loader(loader)
    ddp = distributed.Wrapper()
    suffixes = {i: Suffix(model, cut) for i, cut in cuts.items()}

    def inputs_for(stage: Stage) -> EpochInputs:
        if "head" in cached and stage.head_only:  # the head alone, on the stored features
            return EpochInputs(ddp(head, stage.index), *cached["head"], nn.Module.train)
        if stage.index in suffixes:  # the model from the stage's cut on, on the stored activations
            return EpochInputs(ddp(suffixes[stage.index], stage.index), *cached[f"cut:{cuts[stage.index].output}"],
                               staging.train_mode)  # fmt: skip
        return EpochInputs(ddp(model, stage.index), train_loader, val_loader, staging.train_mode)

    steps_per_epoch = math.ceil(len(train_loader) / cfg.train.accum_steps)
    schedule = create_schedule(cfg.optim, steps_per_epoch, cfg.train.epochs)
    # GradScaler only matters for fp16; with bf16 or fp32 it is a pass-through.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    if spec.task == "image":
        cfg.data.img_size = built.data_config["input_size"][-1]
    cfg.data.num_workers = md.num_workers
    cfg.strategy.name = strategy
    return Prepared(
        cfg, spec, built, model, device, amp_dtype, groups, stages, staging, optimizer, schedule, scaler,
        inputs_for, advice, lr_result, cache_note,
        train_images=train_loader.dataset if spec.task == "image" else None,
        val_images=val_loader.dataset if spec.task == "image" else None,
        tokenizer=md.tokenizer, data_notes=md.notes,
        class_weights=None if loss_weights is None else torch.tensor(loss_weights, device=device),
    )  # fmt: skip


def cache_frozen_parts(
    cfg: Config,
    spec: DataSpec,
    md: ModelOnData,
    strategy: str,
    stages: list[Stage],
    groups: list[LayerGroup],
    head: nn.Module | None,
    make_loader: Callable[[Dataset, bool], DataLoader],
) -> tuple[dict[str, tuple[DataLoader, DataLoader]], dict[int, Cut], str | None]:
    """What frozen parts compute once (data/feature_cache.py): (train, val) loaders of the head's inputs
    ("head") and of each stage's cut ("cut:MODULE"), the cut of each stage that starts from one, and a line
    for the run header."""
    taps: dict[str, Tap] = {}
    cuts: dict[int, Cut] = {}
    augmented = spec.task == "image" and cfg.data.augment.enabled  # texts are never augmented
    if use_feature_cache(cfg, strategy, stages, head, augmented):
        taps["head"] = (head, True)
    if spec.task == "image" and use_cuts(cfg, augmented):  # texts: no single activation to start from
        sample = md.eval_loader(spec.train[:4]).dataset  # a few images to find and verify each cut on
        images = torch.stack([sample[i][0] for i in range(len(sample))]).to(md.device)
        samples = len(spec.train) + len(spec.val)
        cuts = stage_cuts(stages, groups, md.model, images, samples, cfg.strategy.cache_max_gb)
        taps |= {f"cut:{cut.output}": (md.model.get_submodule(cut.output), False) for cut in cuts.values()}
    if not taps:
        return {}, {}, None
    started = time.perf_counter()
    with distributed.feature_cache_turns():  # rank 0 computes and stores; the others then load
        cached, hit = cached_loaders(
            md.model, head, taps, md.built.arch, md.built.data_config, spec.train, spec.val, md.eval_loader,
            make_loader, FeatureCache(cfg.data.cache_dir or default_cache_dir()), md.device, md.amp_dtype,
        )  # fmt: skip
    verb = "loaded from the cache" if hit else "computed and cached"
    return (
        cached,
        cuts,
        f"frozen features {verb} in {time.perf_counter() - started:.1f}s: "
        + ", ".join(
            ["head-only epochs train on the head's inputs"] * ("head" in cached)
            + [f"from epoch {stages[i].start_epoch + 1} start after {cut.output}" for i, cut in cuts.items()]
        ),
    )


def lr_range_test(
    model: nn.Module,
    head: nn.Module | None,
    make_staging: Callable[..., Staging],
    cfg: Config,
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> LRFinderResult:
    """The LR range test on a copy, in the strategy's last stage: the one with the most groups training,
    where a too-high LR diverges (the head alone tolerates far more). For a linear probe on cached
    features that is the head alone, which takes seconds."""
    if head is not None:
        net = copy.deepcopy(head)
        optimizer = create_optimizer(
            cfg.optim, [{"params": list(net.parameters()), "lr": 1.0, "base_lr": 1.0}]
        )
        return find_lr(net, optimizer, nn.Module.train, loader, device, amp_dtype)
    net = copy.deepcopy(model)
    staging = make_staging(net, base_lr=1.0)
    optimizer = staging.build(len(staging.stages) - 1)
    return find_lr(net, optimizer, staging.train_mode, loader, device, amp_dtype)


def check_model_accepts(model: nn.Module, built: BuiltModel, cfg: Config, device: torch.device) -> None:
    """Fail before anything is written if the model cannot train at this input size and batch size."""
    size = built.data_config["input_size"]
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if cfg.train.batch_size == 1 and has_batchnorm:
        raise GraftError(
            f"{cfg.model.name} has BatchNorm layers, which cannot train on batches of 1; use --batch-size 2 or more"
        )
    model.eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(2, *size, device=device))
    except (RuntimeError, AssertionError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GraftError(
            f"{cfg.model.name} cannot take {size[1]}x{size[2]} inputs ({reason}); choose another --img-size"
        ) from None
