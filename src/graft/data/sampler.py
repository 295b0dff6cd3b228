"""Data order and augmentation randomness as pure functions of (seed, epoch, sample), so a run can stop
anywhere and resume bitwise-identical, whatever the number of DataLoader workers.

- `ResumableSampler` yields `(epoch, index)` keys: the epoch's permutation comes from a generator seeded with
  (seed, epoch), and iteration can start at any position (the batches a checkpoint already consumed).
- Under torchrun, `shard(rank, world_size)` deals that same order to the ranks the way torch's
  DistributedSampler does: sample i of the (remaining) order goes to rank i % world_size, training orders
  padded with the order's first samples to an equal count per rank (every rank takes the same number of
  steps). Positions count per rank; the sharded order of epoch e from position p is the single order from
  p * world_size on, so a resume with the same world size is exact, and one with a different world size
  deals every remaining sample of the epoch to the new ranks.
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
from torch.utils.data import Dataset, Sampler, get_worker_info


class ResumableSampler(Sampler):
    """`lengths` + `batch_size` (text): the epoch's order is bucketed by length. The shuffled order is cut
    into chunks of 50 batches, each chunk sorted by length and cut into batches, and the batches shuffled:
    batches hold similar lengths (little padding) while every epoch still mixes the whole dataset. Without
    shuffling (evaluation), `lengths` sorts the whole order by length; `order()` tells which sample each
    position holds, so results can be put back in dataset order.

    `weights` (class balancing, --balance sampler): the epoch is `size` draws with replacement, sample i
    drawn with probability weights[i] / sum, from the same (seed, epoch) generator, so it resumes the same."""

    def __init__(
        self, size: int, shuffle: bool, seed: int, lengths: list[int] | None = None, batch_size: int = 1,
        weights: list[float] | None = None,
    ):  # fmt: skip
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / sum(weights)
        self.lengths, self.batch_size = lengths, batch_size
        self.epoch, self.start = 0, 0
        self.rank, self.world_size, self.pad = 0, 1, False

    def shard(self, rank: int, world_size: int, pad: bool) -> None:
        """Yield only rank `rank`'s share of each epoch; `pad`: equal shares (training), else exact ones."""
        self.rank, self.world_size, self.pad = rank, world_size, pad

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The next iteration yields epoch `epoch`'s order from this rank's position `start` on (past the
        end: nothing, as when a checkpoint was taken after the epoch's last, partial batch)."""
        self.epoch, self.start = epoch, min(start * self.world_size, self.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = (
                rng.permutation(self.size)
                if self.weights is None
                else rng.choice(self.size, self.size, replace=True, p=self.weights)
            )
            if self.lengths is not None:
                order = self._bucketed(order, rng)
        else:
            order = self.order()
        return iter([(self.epoch, int(i)) for i in self._share(order)])

    def order(self) -> np.ndarray:
        """The unshuffled order: dataset order, or sorted by length (stable) when lengths are given."""
        if self.lengths is None:
            return np.arange(self.size)
        return np.argsort(np.asarray(self.lengths), kind="stable")

    def _share(self, order: np.ndarray) -> np.ndarray:
        rest = order[self.start :]
        if self.world_size == 1:
            return rest
        if self.pad:  # DistributedSampler's padding: repeat the epoch's first samples
            rest = np.concatenate([rest, np.resize(order, (-len(rest)) % self.world_size)])
        return rest[self.rank :: self.world_size]

    def _bucketed(self, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chunk = self.batch_size * 50
        lengths = np.asarray(self.lengths)
        batches = []
        for begin in range(0, len(order), chunk):
            part = order[begin : begin + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        # Only the very last batch may be short: a short one in the middle would shift every later batch.
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        return np.concatenate([full[i] for i in rng.permutation(len(full))] + short)

    def __len__(self) -> int:
        rest = self.size - self.start
        if self.pad:
            return -(-rest // self.world_size)
        return len(range(self.rank, rest, self.world_size))


def in_dataset_order(x: torch.Tensor, order: torch.Tensor | np.ndarray | None) -> torch.Tensor:
    """Rows produced in `order` (row i is sample order[i], e.g. `ResumableSampler.order()`) back in
    dataset order."""
    if order is None:
        return x
    order = torch.as_tensor(order)
    return torch.empty_like(x).index_copy_(0, order, x)


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    python_seed, numpy_seed, torch_seed = np.random.SeedSequence([abs(k) for k in key]).generate_state(3)
    if get_worker_info() is not None:
        # A DataLoader worker runs nothing but dataset code, all of it under seeded(): no state there to
        # keep, and saving/restoring numpy's 2.5 KB MT19937 state was half the cost of a small image.
        _seed(python_seed, numpy_seed, torch_seed)
        yield
        return
    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    _seed(python_seed, numpy_seed, torch_seed)
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)


def _seed(python_seed: int, numpy_seed: int, torch_seed: int) -> None:
    random.seed(int(python_seed))
    np.random.seed(int(numpy_seed))
    torch.default_generator.manual_seed(int(torch_seed))  # CPU only: CUDA RNG states stay as they were


class Keyed(Dataset):
    """Accepts the sampler's (epoch, index) keys for a dataset that needs no per-epoch randomness."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int):
        return self.dataset[key[1] if isinstance(key, tuple) else key]
