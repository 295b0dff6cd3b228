"""Data-parallel training on PyTorch's own engine: `torchrun --nproc-per-node N -m graft train ...`.

torchrun starts one process per device and tells each its place through environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); `init()` reads them. Without them (a plain `graft train`) every
function here is a no-op or the identity, so the loop reads the same with one process or N.

What each piece guarantees:
- every rank builds the same model from the same seed; DistributedDataParallel (`wrap`) averages the
  gradients, so the replicas stay identical and any rank's weights are the run's weights;
- the training order is the single-process order sharded across ranks (data/sampler.py), so a resume
  with the same world size continues exactly, and one with another world size trains every remaining
  sample of the epoch (valid, not bitwise);
- rank 0 alone writes: the run folder, logs, checkpoints (the unwrapped model, every rank's RNG), bundle;
- decisions that must agree (stop now? checkpoint now?) are all-reduced, so no rank waits forever in a
  collective another rank has left.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from graft.errors import GraftError

T = TypeVar("T")
# Small CPU-side collectives (the per-step stop/checkpoint vote, RNG and output gathers) go through gloo
# even when gradients go through nccl: a vote on the GPU would make the CPU wait for the GPU every step.
_cpu_group: Any = None


def launched() -> bool:
    """True in a process started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str) -> None:
    """Join the process group torchrun described: nccl for CUDA, gloo for CPU. Idempotent."""
    if not launched() or dist.is_initialized():
        return
    cuda = device != "cpu" and not device.startswith("mps") and torch.cuda.is_available()
    if cuda:  # before the first CUDA call: each process owns the GPU of its local rank
        if local_rank() >= torch.cuda.device_count():
            raise GraftError(
                f"process {local_rank()} of this node has no GPU of its own: {torch.cuda.device_count()} visible; "
                "start at most that many processes per node (--devices / --nproc-per-node), or use --device cpu"
            )
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    global _cpu_group
    _cpu_group = dist.new_group(backend="gloo") if cuda else None  # None: the default (gloo) group
    atexit.register(_shutdown)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """`cuda` means this process's GPU (its local rank) under torchrun."""
    if active() and device.type == "cuda":
        return torch.device("cuda", local_rank())
    return device


def barrier() -> None:
    if active():
        dist.barrier(group=_cpu_group)


def broadcast(value: T) -> T:
    """Rank 0's value on every rank (any picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_cpu_group)
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and hand its result to every rank; a GraftError it raises is raised on
    every rank (with the same message), so no rank is left waiting for a result that never comes."""
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except GraftError as err:
            error = str(err)
    result, error = broadcast((result, error))
    if error is not None:
        raise GraftError(error)
    return result


def gather(value: T) -> list[T]:
    """Every rank's `value`, in rank order, on every rank."""
    if not active():
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value, group=_cpu_group)
    return out


def any_rank(*flags: bool) -> list[bool]:
    """Each flag OR-ed over the ranks: one small all-reduce, so every rank takes the same branch."""
    if not active():
        return list(flags)
    t = torch.tensor([float(f) for f in flags])
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_cpu_group)
    return [bool(v) for v in t.tolist()]


def sum_ranks(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over the ranks (a copy; `value` is untouched)."""
    if not active():
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total


def shard_loader(loader: DataLoader) -> None:
    """Deal `loader`'s order to the ranks (data/sampler.py): training shares padded to equal length, so
    every rank takes the same number of steps; evaluation shares exact. Under one process: nothing."""
    if not active():
        return
    sampler, train = loader.sampler, loader.sampler.shuffle
    sampler.shard(rank(), world_size(), pad=train)
    if train and loader.batch_sampler is not None:  # create_loader's rule, on this rank's share: a last
        share = len(sampler)  # batch of exactly 1 breaks BatchNorm, so that lone sample is dropped
        loader.batch_sampler.drop_last = share % loader.batch_size == 1 and share > 1


def wrap(net: nn.Module) -> nn.Module:
    """DistributedDataParallel over `net`'s trainable parameters as they are now. DDP registers the
    parameters that require grad when it is built, so the wrapper must be rebuilt whenever a stage
    unfreezes groups (`Wrapper` does); frozen parameters are simply not registered, which is why no
    `find_unused_parameters` (and its per-step graph walk) is needed."""
    if not active() or not any(p.requires_grad for p in net.parameters()):
        return net
    device = next(net.parameters()).device
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


class Wrapper:
    """One DDP wrapper per (module, strategy stage): built when the stage is entered, reused after."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._wrapped: nn.Module | None = None

    def __call__(self, net: nn.Module, stage: int) -> nn.Module:
        if not active():
            return net
        if self._key != (id(net), stage):
            self._key, self._wrapped = (id(net), stage), wrap(net)
        return self._wrapped


def no_sync(net: nn.Module, syncing: bool):
    """Inside a gradient-accumulation group, skip DDP's all-reduce until the group's last backward."""
    if syncing or not isinstance(net, DistributedDataParallel):
        return nullcontext()
    return net.no_sync()


def gather_in_order(columns: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-sample evaluation columns from every rank, back in dataset order. The evaluation sampler
    deals sample i to rank i % world_size (no padding), so interleaving the ranks' rows restores it."""
    if not active():
        return list(columns)
    parts = gather([c.cpu() for c in columns])
    out = []
    for c in range(len(columns)):
        pieces = [p[c] for p in parts]
        merged = pieces[0].new_empty((sum(len(p) for p in pieces), *pieces[0].shape[1:]))
        for r, piece in enumerate(pieces):
            merged[r :: len(pieces)] = piece
        out.append(merged)
    return out


@contextmanager
def feature_cache_turns() -> Iterator[None]:
    """Rank 0 computes (or loads) the feature cache first; the others wait, then load what it stored."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()
