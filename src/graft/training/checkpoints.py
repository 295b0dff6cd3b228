"""A run's checkpoints: what goes in them, when they are written, which are kept, and restoring from one.

A checkpoint holds everything the next optimizer step depends on: weights, optimizer and GradScaler state,
the strategy stage (whose param groups are rebuilt by replaying the stages, then filled from the optimizer
state), the position in the epoch and its running loss, every RNG (python, numpy, torch CPU and CUDA; data
order and augmentation are functions of the seed, see data/sampler.py), best/top-k, early stopping and the
metric history. Resuming from it continues the run exactly: on CPU, bitwise.

Kept on disk: `last`, `best` and the `keep_top_k` best epoch-end checkpoints; rotation never deletes best or
last. Mid-epoch checkpoints (`save_every_steps`/`save_every_minutes`, or a stop request) only become `last`.

Writing happens on one background thread: the training thread only copies the tensors (a snapshot, ~10 ms
for the demo model), so training goes on while the files are serialized, hashed and fsync'ed (~150 ms). The
index moves to a checkpoint only once its folder is complete, so a crash mid-write still resumes from the
previous one; one write is in flight at most, and a write error is raised on the training thread.

Under torchrun (training/distributed.py) only rank 0 writes, the unwrapped model (the replicas are identical);
every rank's RNG states are gathered into the checkpoint (`rng_ranks`) with the world size, and each rank
restores its own when resumed with the same world size.
"""

from __future__ import annotations

import copy
import math
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from graft.config import Config, config_to_dict
from graft.errors import GraftError
from graft.faults import fault
from graft.runs.best import ranking
from graft.runs.store import Checkpoint, CheckpointStore, Index
from graft.strategies.stages import stages_from_config
from graft.training import distributed
from graft.training.prepare import Prepared
from graft.training.state import TrainState


class RunCheckpoints:
    """The loop's `checkpoints` argument: decides when to save, writes, keeps the index and rotation."""

    def __init__(self, store: CheckpointStore, prepared: Prepared, mode: str):
        self.store, self.p, self.mode = store, prepared, mode
        self.cfg: Config = prepared.cfg
        self.config_dict = config_to_dict(self.cfg)
        self.last_saved = time.monotonic()
        self.saved: list[str] = []  # names written by this process, for the console
        self.seconds = 0.0  # time the training thread spent on checkpoints (snapshots, waiting): their cost
        self.write_seconds = 0.0  # time the writer thread spent writing
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graft-checkpoint")
        self._pending: Future | None = None

    def due(self, state: TrainState) -> bool:
        every, minutes = self.cfg.checkpoint.save_every_steps, self.cfg.checkpoint.save_every_minutes
        return bool(every and state.step % every == 0) or bool(
            minutes and time.monotonic() - self.last_saved >= minutes * 60
        )

    def save_step(self, state: TrainState) -> None:
        self._submit(
            state, Index(last=f"step-{state.step:06d}", best=state.best_checkpoint, top_k=state.top_k)
        )

    def save_epoch(self, state: TrainState, improved: bool) -> None:
        name = f"step-{state.step:06d}"
        if improved:
            state.best_checkpoint = name
        record = state.history[-1]
        metric = record[self.cfg.checkpoint.monitor]
        entry = {"name": name, "metric": metric, "val_loss": record["val_loss"], "epoch": state.epoch}
        ranked = [e for e in state.top_k if e["name"] != name] + ([] if math.isnan(metric) else [entry])
        monitor = self.cfg.checkpoint.monitor
        # Best first, by the rule TrainState.update_best judges with (a stable sort: equal ones keep their order).
        ranked.sort(key=lambda e: ranking(e["metric"], e["val_loss"], monitor, self.mode), reverse=True)
        state.top_k = ranked[: self.cfg.checkpoint.keep_top_k]
        self._submit(state, Index(last=name, best=state.best_checkpoint, top_k=state.top_k))

    def finish(self) -> None:
        """Wait for the write in flight (and raise its error, if any)."""
        started = time.perf_counter()
        try:
            if self._pending is not None:
                self._pending.result()
        finally:
            self._pending = None
            self.seconds += time.perf_counter() - started

    def close(self) -> None:
        try:
            self.finish()
        finally:
            self._writer.shutdown(wait=True)

    def _submit(self, state: TrainState, index: Index) -> None:
        self.finish()  # at most one write in flight; the previous one's error surfaces here
        started = time.perf_counter()
        rngs = distributed.gather(capture_rng())  # a collective: every rank calls _submit at the same steps
        if not distributed.is_main():  # rank 0 writes; the others only keep the same clock for `due`
            self.last_saved = time.monotonic()
            return
        # A snapshot: training goes on changing these tensors in place while the writer thread works.
        model = {k: v.detach().to("cpu", copy=True) for k, v in self.p.model.state_dict().items()}
        train_state = _copy_tensors(
            {
                "optimizer": self.p.optimizer.state_dict(),
                "scaler": self.p.scaler.state_dict(),
                "rng": rngs[0],
                **({"rng_ranks": rngs} if len(rngs) > 1 else {}),
            }
        )
        progress = {
            "progress": copy.deepcopy(state.to_dict()),
            "config": self.config_dict,
            "classes": self.p.spec.classes,
            "schedule": self.p.schedule.to_dict(),
            "world_size": len(rngs),  # TrainState.batch_in_epoch counts batches per process
        }
        self._pending = self._writer.submit(self._write, state.step, model, train_state, progress, index)
        self.last_saved = time.monotonic()
        self.saved.append(index.last)
        self.seconds += time.perf_counter() - started

    def _write(self, step: int, model: dict, train_state: dict, progress: dict, index: Index) -> None:
        started = time.perf_counter()
        self.store.save(step, model, train_state, progress)
        self.store.write_index(index)
        fault("checkpoint-committed")
        self.store.prune({n for n in (index.last, index.best) if n} | {e["name"] for e in index.top_k})
        self.write_seconds += time.perf_counter() - started


def _copy_tensors(value: Any) -> Any:
    """Deep copy with every tensor cloned to the CPU (optimizer state is updated in place)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _copy_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_tensors(v) for v in value)
    return value


def restore(prepared: Prepared, checkpoint: Checkpoint) -> TrainState:
    """Put `prepared` (freshly built from the same config) into the checkpoint's exact state."""
    state = TrainState.from_dict(checkpoint.state["progress"])
    saved_epochs = checkpoint.state["config"]["train"]["epochs"]
    if saved_epochs != prepared.cfg.train.epochs and prepared.cfg.strategy.name == "gradual":
        before = prepared.cfg.model_copy(
            update={"train": prepared.cfg.train.model_copy(update={"epochs": saved_epochs})}
        )
        if stages_from_config(before, len(prepared.groups), prepared.head_solved) != prepared.stages:
            raise GraftError(
                f"changing epochs from {saved_epochs} to {prepared.cfg.train.epochs} would change when gradual "
                f"unfreezes its groups; resume with --epochs {saved_epochs}, or fix the schedule with "
                "--set strategy.unfreeze_at=... --set strategy.unfreeze_groups=N in both runs"
            )
    prepared.model.load_state_dict(checkpoint.model)
    prepared.optimizer = prepared.staging.build(state.stage)  # the stage's param groups, in order
    prepared.optimizer.load_state_dict(checkpoint.train_state["optimizer"])
    prepared.scaler.load_state_dict(checkpoint.train_state["scaler"])
    saved_world, world = checkpoint.state.get("world_size", 1), distributed.world_size()
    rngs = checkpoint.train_state.get("rng_ranks") or [checkpoint.train_state["rng"]]
    if saved_world == world:  # exact: each rank continues its own RNG streams and its own share of the order
        restore_rng(rngs[distributed.rank()])
    else:
        restore_rng(rngs[distributed.rank() % len(rngs)])
        # Valid, not exact: the new ranks take the epoch's order from the same global position (rounded
        # down to a whole accumulation group of the new world, so up to one global step is trained twice).
        accum = prepared.cfg.train.accum_steps
        state.batch_in_epoch = state.batch_in_epoch * saved_world // world // accum * accum
    return state


def capture_rng() -> dict[str, Any]:
    """Every RNG the training process draws from, as tensors and plain values (weights_only-loadable)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(mt), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict[str, Any]) -> None:
    version, mt, gauss = rng["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
