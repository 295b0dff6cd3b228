"""The model built for a dataset, with its loaders: what training, advising and summaries share.

Images: a timm/torchvision backbone with a fresh head, timm transforms from its preprocessing, seeded
resumable loaders. Texts: a Hugging Face encoder, its tokenizer, token ids cached and padded per batch,
training batches bucketed by length and validation sorted by length (little padding either way).
Nothing here resolves a strategy or writes a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from graft.config import Config, apply_task_defaults
from graft.data.cache_dir import default_cache_dir
from graft.data.check import balance_weights, resolve_balance
from graft.data.discover import DataSpec, Sample
from graft.data.images import (
    ImageDataset,
    create_loader,
    create_transforms,
    default_num_workers,
    mirrored_transform,
)
from graft.data.tokens import PadBatch, TextDataset, choose_max_length, token_lengths, tokenize
from graft.errors import GraftError
from graft.models.module_input import ModelObject, build_from_object, build_text_from_object
from graft.models.registry import create_model
from graft.models.text_encoder import build_text
from graft.models.vision import BuiltModel
from graft.runtime import resolve_amp, resolve_device, seed_everything
from graft.training import distributed


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
    # images: eval_loader's twin that flips every image left-right (the label check's second view)
    mirror_loader: Callable[[list[Sample]], DataLoader] | None = None


def build_on_data(
    cfg: Config, spec: DataSpec, given: ModelObject | None = None, resuming: bool = False
) -> ModelOnData:
    """`cfg` is not changed: the returned `ModelOnData.cfg` is a copy with the data's defaults filled in
    (the model for the modality, the class-balance choice). `given`: the nn.Module object graft.train was
    given (its copy becomes the model); a run trained from one and `resuming` without it is built from its
    resolved name (the checkpoint holds the weights)."""
    cfg = cfg.model_copy(deep=True)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = distributed.local_device(resolve_device(cfg.train.device))
    amp_dtype = resolve_amp(cfg.train.amp, device)
    apply_task_defaults(cfg, spec.modality, spec.task.name)
    cfg.data.balance = resolve_balance(cfg.data.balance, spec)
    if cfg.model.module is not None and given is None and not resuming:
        raise GraftError(
            f"model.module: this config comes from a run trained from a {cfg.model.module} object; a config "
            "cannot rebuild an object's weights: pass the object as model="
        )
    if spec.modality == "text":
        return build_text_on_data(cfg, spec, device, amp_dtype, given)
    m = cfg.model
    from_solved_head = cfg.strategy.probe and (m.pretrained or m.weights is not None)
    if m.drop_rate is None and m.module is None and from_solved_head:  # an object keeps its own dropout
        # Fine-tuning from a solved head: no dropout before it. It was fit on whole features; dropping 20%
        # of them at random in every step only adds noise to the few epochs of adaptation (measured from
        # the solved head, 5 epochs of the top group on the four photo sets: +1.6 points over the probe
        # without it, +0.8 with timm's default 0.2). Set --set model.drop_rate=... to keep one.
        m.drop_rate = 0.0
    outputs = spec.task.outputs(spec.classes)
    if given is not None:
        built = build_from_object(given, outputs, cfg.data.img_size)
    else:  # resuming a run trained from an object: its architecture by name, its weights in the checkpoint
        built = create_model(m.name, outputs, m.pretrained and m.module is None, m.weights, m.drop_rate,
                             cfg.data.img_size)  # fmt: skip
    if m.module is not None:
        built.weights = f"the {m.module} object given as model="  # as when the run began: same stages
    model = built.model.to(device)
    check_model_accepts(model, built, cfg, device, outputs)
    num_workers = default_num_workers() if cfg.data.num_workers is None else cfg.data.num_workers
    train_tf, eval_tf = create_transforms(built.data_config, cfg.data.augment)
    targets_of = lambda samples: spec.task.targets([s.label for s in samples])  # noqa: E731
    batch, seed, pin = cfg.train.batch_size, cfg.train.seed, device.type == "cuda"

    def eval_loader(samples: list[Sample], transform: Callable = eval_tf) -> DataLoader:
        return create_loader(ImageDataset(samples, transform, seed, targets_of(samples)), batch, False, num_workers,
                             seed, pin)  # fmt: skip

    train_loader = create_loader(
        ImageDataset(spec.train, train_tf, seed, targets_of(spec.train)), batch, True, num_workers, seed, pin,
        weights=balance_weights(cfg.data.balance, spec)[0],
    )  # fmt: skip
    return ModelOnData(
        cfg, built, model, device, amp_dtype, train_loader, eval_loader(spec.val), eval_loader, num_workers,
        mirror_loader=lambda samples: eval_loader(samples, mirrored_transform(eval_tf)),
    )  # fmt: skip


def mirrored(md: ModelOnData) -> ModelOnData | None:
    """`md` seen in a mirror: its eval loader flips every image left-right, and its data config says so (the
    feature cache keys on it). None for texts."""
    if md.mirror_loader is None:
        return None
    data_config = {**md.built.data_config, "view": "mirrored"}
    return replace(md, eval_loader=md.mirror_loader, built=replace(md.built, data_config=data_config))


def build_text_on_data(
    cfg: Config, spec: DataSpec, device: torch.device, amp_dtype: torch.dtype | None,
    given: ModelObject | None = None,
) -> ModelOnData:  # fmt: skip
    """The text counterpart of build_on_data: an encoder, its tokenizer, and loaders of token ids
    (tokenized once, cached) padded per batch."""
    m, d = cfg.model, cfg.data
    if m.weights is not None:
        raise GraftError("--weights applies to image architectures; for text give a model folder as --model")
    outputs = spec.task.outputs(spec.classes)
    if given is not None:
        built, tokenizer = build_text_from_object(given, outputs, spec.classes, spec.task.problem_type)
    else:
        built, tokenizer = build_text(m.name, outputs, spec.classes, m.pretrained, m.drop_rate,
                                      spec.task.problem_type)  # fmt: skip
    if m.module is not None:
        built.weights = f"the {m.module} object given as model="
    model = built.model.to(device)
    cache = d.cache_dir or default_cache_dir()
    # Batches are assembled from in-memory token ids: worker processes would only add start-up time.
    num_workers = 0 if d.num_workers is None else d.num_workers
    batch, seed, pin = cfg.train.batch_size, cfg.train.seed, device.type == "cuda"
    if d.max_length == "auto":  # resolved here, from the training texts, into this copy of the config
        d.max_length = choose_max_length(
            token_lengths(spec.train, tokenizer), _model_limit(built.model, tokenizer)
        )
    collate = PadBatch(tokenizer.pad_token_id or 0, d.max_length if d.pad_to_max_length else None)
    notes: list[str] = []

    def text_loader(samples: list[Sample], train: bool = False, report: bool = False) -> DataLoader:
        tokens = tokenize(samples, tokenizer, d.max_length, cache)
        if tokens.truncated and report:
            notes.append(f"{tokens.truncated} of {len(samples)} {'training' if train else 'validation'} texts "
                         f"were longer than {d.max_length} tokens and were truncated (--max-length)")  # fmt: skip
        # Training: batches of similar length (bucketed, still shuffled); validation: sorted by length.
        lengths = tokens.lengths() if d.bucket_by_length or not train else None
        dataset = TextDataset(tokens, spec.task.targets([s.label for s in samples]))
        weights = balance_weights(d.balance, spec)[0] if train else None
        return create_loader(dataset, batch, train, num_workers, seed, pin, collate, lengths, weights)

    train_loader = text_loader(spec.train, train=True, report=True)
    val_loader = text_loader(spec.val, report=True)
    built.data_config["max_length"] = d.max_length
    return ModelOnData(cfg, built, model, device, amp_dtype, train_loader, val_loader, text_loader,
                       num_workers, tokenizer, notes)  # fmt: skip


def _model_limit(model: nn.Module, tokenizer: Any) -> int:
    """The longest input the encoder takes: its position embeddings (and the tokenizer's own limit)."""
    limits = [
        getattr(model.hf.config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    return min([int(x) for x in limits if isinstance(x, int) and 0 < x < 100_000] or [512])


def check_model_accepts(
    model: nn.Module, built: BuiltModel, cfg: Config, device: torch.device, outputs: int | None = None
) -> None:
    """Fail before anything is written if the model cannot train at this input size and batch size, or
    does not return one row of `outputs` logits per image (a module given as an object may not)."""
    size = built.data_config["input_size"]
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if cfg.train.batch_size == 1 and has_batchnorm:
        raise GraftError(
            f"{cfg.model.name} has BatchNorm layers, which cannot train on batches of 1; use --batch-size 2 or more"
        )
    model.eval()
    try:
        with torch.inference_mode():
            out = model(torch.zeros(2, *size, device=device))
    except (RuntimeError, AssertionError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GraftError(
            f"{cfg.model.name} cannot take {size[1]}x{size[2]} inputs ({reason}); choose another --img-size"
        ) from None
    if outputs is not None and not (isinstance(out, torch.Tensor) and tuple(out.shape) == (2, outputs)):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise GraftError(
            f"{cfg.model.name} returns {got} for 2 images; graft trains a model whose forward returns the "
            f"(batch, {outputs}) logits of its head (its last nn.Linear, or reset_classifier)"
        )
