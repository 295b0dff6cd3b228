"""Data order and augmentation randomness as pure functions of (seed, epoch, sample), so a run can stop
anywhere and resume bitwise-identical, whatever the number of DataLoader workers.

- `ResumableSampler` yields `(epoch, index)` keys: the epoch's permutation comes from a generator seeded with
  (seed, epoch), and iteration can start at any position (the batches a checkpoint already consumed).
- `seeded(seed, epoch, index)` runs a sample's transform with python/numpy/torch RNGs seeded from the
  key, then restores them. Random crops and flips therefore do not depend on which worker process decodes
  the image, on persistent-worker state, or on how many samples came before a restart; and in a
  single-process loader they leave the training process's RNG (dropout) untouched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler):
    def __init__(self, size: int, shuffle: bool, seed: int):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The next iteration yields epoch `epoch`'s order from position `start` on (past the end: nothing,
        as when a checkpoint was taken after the epoch's last, partial batch)."""
        self.epoch, self.start = epoch, min(start, self.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        return iter([(self.epoch, int(i)) for i in order[self.start :]])

    def __len__(self) -> int:
        return self.size - self.start


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    python_seed, numpy_seed, torch_seed = np.random.SeedSequence([abs(k) for k in key]).generate_state(3)
    random.seed(int(python_seed))
    np.random.seed(int(numpy_seed))
    torch.default_generator.manual_seed(int(torch_seed))  # CPU only: CUDA RNG states stay as they were
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)


class Keyed(Dataset):
    """Accepts the sampler's (epoch, index) keys for a dataset that needs no per-epoch randomness."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int):
        return self.dataset[key[1] if isinstance(key, tuple) else key]
