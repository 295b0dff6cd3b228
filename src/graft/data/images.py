"""Image datasets, transforms and loaders.

Preprocessing always comes from the model (a timm data config: input size, mean/std, interpolation,
crop): the numbers a backbone was pretrained with are the ones it must be fine-tuned and served with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from timm.data import create_transform
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchvision import transforms

from graft.config import AugmentConfig
from graft.data.decode import load_image
from graft.data.discover import Sample
from graft.data.sampler import Keyed, ResumableSampler, seeded
from graft.faults import fault


class ImageDataset(Dataset):
    """Decoded, transformed images. Keys are `(epoch, index)` from `ResumableSampler` (or a plain index):
    the transform's randomness is seeded by (seed, epoch, index), see data/sampler.py."""

    def __init__(
        self, samples: list[Sample], transform: Callable[[Image.Image], torch.Tensor], seed: int = 0,
        targets: torch.Tensor | None = None,
    ):  # fmt: skip
        """`targets`: the task's training target per sample (graft/tasks/); default: the labels as class indices."""
        self.samples = samples
        self.targets = targets
        self.transform = transform
        self.seed = seed
        # Per worker, the index being decoded (-1: none), in shared memory: when a worker dies (killed for
        # memory, a decoder crash) the main process can still name the file (training/guards.py).
        self.in_flight: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample = self.samples[index]
        worker = get_worker_info() if self.in_flight is not None else None
        if worker is not None:
            self.in_flight[worker.id] = index
        fault("decode")
        image = load_image(sample.path)
        with seeded(self.seed, epoch, index):
            item = self.transform(image), sample.label if self.targets is None else self.targets[index]
        if worker is not None:
            self.in_flight[worker.id] = -1
        return item


def create_transforms(data_config: dict[str, Any], augment: AugmentConfig) -> tuple[Callable, Callable]:
    """(train, eval) transforms; eval is the model's standard resize + center crop + normalize."""
    preprocessing = {
        k: data_config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    }
    eval_tf = create_transform(**preprocessing, is_training=False)
    if not augment.enabled:
        return eval_tf, eval_tf
    train_tf = create_transform(
        **preprocessing,
        is_training=True,
        scale=augment.scale,
        ratio=augment.ratio,
        hflip=augment.hflip,
        vflip=augment.vflip,
        color_jitter=augment.color_jitter,
        auto_augment=augment.auto_augment,
        re_prob=augment.random_erasing,
    )
    return train_tf, eval_tf


def mirrored_transform(transform: Callable) -> Callable:
    """`transform` of the image flipped left-right: a second view of it, for a task whose training
    augmentation says a mirror image is the same class (hflip > 0)."""
    return transforms.Compose([transforms.RandomHorizontalFlip(p=1.0), transform])


def default_num_workers() -> int:
    # One core stays with the training process; decoding small images rarely needs more than a few.
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def create_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    num_workers: int,
    seed: int,
    pin_memory: bool = False,
    collate_fn: Callable | None = None,
    lengths: list[int] | None = None,
    weights: list[float] | None = None,
) -> DataLoader:
    """A DataLoader whose order and augmentation follow from (seed, epoch) alone and can start mid-epoch:
    call `loader.sampler.set_epoch(epoch, start)` before iterating (see data/sampler.py). Text: `collate_fn`
    pads batches, `lengths` buckets the training order by length. `weights`: per-sample draw weights
    (class balancing, training only)."""
    if isinstance(dataset, ImageDataset) and num_workers > 0:
        dataset.in_flight = torch.full((num_workers,), -1, dtype=torch.long).share_memory_()
    generator = torch.Generator()  # the loader's own: iterating never draws from the global torch RNG
    generator.manual_seed(seed)
    return DataLoader(
        dataset if isinstance(dataset, ImageDataset) else Keyed(dataset),
        batch_size=batch_size,
        sampler=ResumableSampler(len(dataset), train, seed, lengths, batch_size, weights if train else None),
        collate_fn=collate_fn,
        generator=generator,
        num_workers=num_workers,
        # Keeping workers alive avoids re-forking (and re-importing torch) at every epoch start.
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        # A last training batch of exactly 1 breaks BatchNorm ("Expected more than 1 value per channel");
        # only that lone sample is dropped (a different one each epoch), not a whole partial batch.
        drop_last=train and len(dataset) % batch_size == 1 and len(dataset) > 1,
    )
