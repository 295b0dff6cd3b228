"""The training loop: `fit` runs epochs of `train_one_epoch` + `validate`, nothing hidden.

Extension points are explicit arguments: the strategy's `Staging` (which groups train from which epoch),
`inputs_for(stage)` (what an epoch's batches go through: the model on images, or its head on cached
features), `monitor` (what is logged, and when), `progress` for the console, `checkpoints` (when and how to save)
and `stop` (a SIGINT/SIGTERM arrived: checkpoint and return).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from graft.data.sampler import in_dataset_order
from graft.faults import fault
from graft.monitoring.console import Progress
from graft.monitoring.monitor import EvalOutputs, Monitor
from graft.runtime import autocast, to_device
from graft.strategies.stages import Stage, Staging, stage_at
from graft.tasks import SingleLabel, Task
from graft.training import distributed
from graft.training.guards import skip_nonfinite
from graft.training.optim import Schedule
from graft.training.signals import GracefulStop
from graft.training.state import TrainState


@dataclass
class StepConfig:
    """How one optimizer step is taken; resolved once from the run config."""

    device: torch.device
    amp_dtype: torch.dtype | None
    accum_steps: int
    clip_grad_norm: float | None
    label_smoothing: float
    log_every: int
    base_lr: float  # the configured LR: the head's LR before the schedule's factor
    skip_nonfinite: int = 0  # NaN/Inf losses tolerated before stopping (training/guards.py)
    class_weights: torch.Tensor | None = None  # cross-entropy weights per class (--balance loss)
    task: Task = field(default_factory=SingleLabel)  # the loss (graft/tasks/)


@dataclass
class EpochInputs:
    """What one epoch's batches go through, and how to put it in train mode."""

    net: nn.Module  # the model, or only its head when training on cached features
    train: DataLoader
    val: DataLoader
    train_mode: Callable[[nn.Module], None]
    # What validation runs through when it differs from `net`: the part above a frozen prefix, on the
    # prefix's stored output (training goes through augmented images, validation images never change).
    val_net: nn.Module | None = None

    @property
    def evaluated(self) -> nn.Module:
        return self.net if self.val_net is None else self.val_net


class Checkpointing(Protocol):
    """What the loop needs from checkpointing (training/checkpoints.py implements it)."""

    def due(self, state: TrainState) -> bool: ...
    def save_step(self, state: TrainState) -> None: ...
    def save_epoch(self, state: TrainState, improved: bool) -> None: ...


def fit(
    model: nn.Module,
    *,
    inputs_for: Callable[[Stage], EpochInputs],
    staging: Staging,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    scaler: torch.amp.GradScaler,
    state: TrainState,
    epochs: int,
    step_cfg: StepConfig,
    metric: str,  # what "best" and early stopping watch: val_acc or val_loss
    mode: str,
    patience: int | None,
    min_delta: float,
    monitor: Monitor,
    progress: Progress,
    checkpoints: Checkpointing,
    stop: GracefulStop,
    deadline: float | None = None,
) -> TrainState:
    """Train from `state` (fresh, or restored from a checkpoint, possibly mid-epoch) to `epochs`.

    Returns early, with a checkpoint written, when `stop` is requested, early stopping triggers, or the
    next epoch would end after `deadline` (a perf_counter() time: the run's time limit).
    """
    if state.stop_reason:  # resuming a run that already stopped early: nothing left to train
        return state
    for epoch in range(state.epoch, epochs):
        stage = stage_at(staging.stages, epoch)
        if stage.index != state.stage:  # an unfreeze: new groups join the optimizer at their own LR
            added = staging.enter(stage, staging.stages[state.stage], optimizer, state.step)
            state.stage = stage.index
            progress.note(f"epoch {epoch + 1}: unfreezing {', '.join(added)}")
            fault("unfreeze")
        inputs = inputs_for(stage)
        started = time.perf_counter()
        done = state.batch_in_epoch * inputs.train.batch_size * distributed.world_size()  # over all ranks
        progress.start_epoch(epoch + 1, epochs, len(inputs.train.dataset), done)
        train = train_one_epoch(
            inputs, optimizer, schedule, scaler, state, step_cfg, monitor, progress, checkpoints, stop
        )
        if train is None:  # stopped mid-epoch on request; the checkpoint is written
            return state
        progress.start_validation(len(inputs.val.dataset))
        val, outputs = validate(
            inputs.evaluated, inputs.val, step_cfg.device, step_cfg.amp_dtype, step_cfg.task,
            progress.advance_validation,
        )  # fmt: skip
        state.epoch, state.batch_in_epoch, state.epoch_loss_sum, state.epoch_seen = epoch + 1, 0, 0.0, 0
        state.epoch_loss_shares = []
        record = {
            "epoch": state.epoch,
            "step": state.step,
            "train_loss": train["loss"],
            **val,
            "lr": train["lr"],
            "epoch_time": time.perf_counter() - started,
            "samples_per_s": train["samples"]
            / max(train["seconds"], 1e-9),  # training only, evaluation excluded
            "wall_time": time.time(),  # when the epoch ended: time-to-accuracy, across restarts too
        }
        state.history.append(record)
        previous_best = state.best_metric
        improved = state.update_best(record, metric, mode)
        state.count_patience(record[metric], previous_best, mode, min_delta)
        if patience is not None and state.bad_epochs >= patience:
            state.stop_reason = "early stopping"
        # The time limit: stop rather than start an epoch that would end after it (as long as the last).
        late = deadline is not None and time.perf_counter() + record["epoch_time"] > deadline
        if epoch + 1 < epochs and distributed.any_rank(late)[0] and not state.stop_reason:
            state.stop_reason = "time limit"
        monitor.end_epoch(record, state.step, outputs)
        checkpoints.save_epoch(state, improved)
        progress.end_epoch(record, improved, state)
        if state.stop_reason or _stop_agreed(stop):
            return state
    return state


def _stop_agreed(stop: GracefulStop, *others: bool) -> tuple[bool, ...]:
    """Whether any rank was asked to stop (and the `others` flags, OR-ed over the ranks too): the ranks
    leave the loop together, or the ones left behind would wait forever in DDP's next all-reduce."""
    stopping, *rest = distributed.any_rank(bool(stop.requested), *others)
    if stopping and not stop.requested:
        stop.requested = "SIGTERM"  # another rank got the signal (torchrun forwards it to every worker)
    return (stopping, *rest) if others else stopping


def train_one_epoch(
    inputs: EpochInputs,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    scaler: torch.amp.GradScaler,
    state: TrainState,
    cfg: StepConfig,
    monitor: Monitor,
    progress: Progress,
    checkpoints: Checkpointing,
    stop: GracefulStop,
) -> dict[str, float] | None:
    """Train epoch `state.epoch` from batch `state.batch_in_epoch` on: the mean training loss (label-smoothed,
    as optimized), the head LR of the last step, samples seen and seconds taken; None if stopped early."""
    started = time.perf_counter()
    net, loader = inputs.net, inputs.train
    inputs.train_mode(net)
    first = state.batch_in_epoch
    loader.sampler.set_epoch(state.epoch, first * loader.batch_size)
    world = distributed.world_size()
    # This process's share of the epoch's loss sum: a resumed epoch's earlier part is each rank's own
    # when saved by as many processes (the mean comes out bitwise the same), else all of it on rank 0.
    # `seen` counts the samples of all ranks.
    shares = state.epoch_loss_shares
    if len(shares) == world:
        resumed = shares[distributed.rank()]
    else:
        resumed = state.epoch_loss_sum if distributed.is_main() else 0.0
    loss_sum = torch.tensor(resumed, device=cfg.device)
    seen = resumed_from = state.epoch_seen
    lr = cfg.base_lr * schedule.factor(state.step)
    n_batches = first + len(loader)
    monitor.begin_epoch(seen)
    optimizer.zero_grad(set_to_none=True)
    for i, (x, targets) in enumerate(loader, start=first):
        x = to_device(x, cfg.device)
        targets = targets.to(cfg.device, non_blocking=True)
        # Divide by the number of batches actually accumulated, so a short final group is not down-weighted.
        group_start = i - i % cfg.accum_steps
        group_size = min(cfg.accum_steps, n_batches - group_start)
        stepping = i + 1 - group_start == group_size
        with distributed.no_sync(net, stepping):  # DDP: all-reduce gradients only on a group's last backward
            with autocast(cfg.device, cfg.amp_dtype):
                logits = net(x)
            loss = cfg.task.loss(logits.float(), targets, cfg.class_weights, cfg.label_smoothing)
            skip = skip_nonfinite(
                loss, state, cfg.skip_nonfinite, cfg.base_lr, loader, i - first, progress.note
            )
            if world > 1 and cfg.skip_nonfinite:  # one rank's NaN skips the batch on every rank
                skip = distributed.any_rank(skip)[0]
            scaler.scale(loss / group_size).backward()
        if skip:  # a NaN/Inf loss within --skip-nonfinite: drop its gradients, no step, not counted
            optimizer.zero_grad(set_to_none=True)
            continue
        loss_sum += loss.detach() * len(targets)
        seen += len(targets) * world  # every rank trains an equal batch (the sampler pads their shares)
        progress.advance(len(targets) * world)
        if not stepping:
            continue  # more batches to accumulate before this group's step

        if cfg.clip_grad_norm is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        schedule.apply(optimizer, state.step)
        lr = cfg.base_lr * schedule.factor(state.step)
        scaler.step(optimizer)  # unscales the gradients in place (fp16), so histograms show true values
        scaler.update()
        state.step += 1
        state.batch_in_epoch = i + 1
        if monitor.histograms_due(state.step, last_of_epoch=i + 1 == n_batches):
            monitor.log_histograms(state.step)
        optimizer.zero_grad(set_to_none=True)
        # .item() syncs the device: only on logging steps (and the epoch's last, so short runs plot too).
        if monitor.step_due(state.step) or i + 1 == n_batches:
            step_loss = loss.item()
            monitor.log_step(state.step, step_loss, optimizer, seen)
            progress.show_loss(step_loss, lr)
        fault("step")
        stopping, due = _stop_agreed(stop, checkpoints.due(state))
        if stopping or due:
            state.epoch_loss_sum, state.epoch_seen = distributed.sum_ranks(loss_sum).item(), seen
            state.epoch_loss_shares = distributed.gather(loss_sum.item()) if world > 1 else []
            checkpoints.save_step(state)
            if stopping:
                return None
    mean_loss = (distributed.sum_ranks(loss_sum) / max(seen, 1)).item()
    # Throughput counts what this process trained: a resumed epoch's first part ran before the restart.
    return {
        "loss": mean_loss,
        "lr": lr,
        "samples": seen - resumed_from,
        "seconds": time.perf_counter() - started,
    }


@torch.inference_mode()
def validate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    task: Task,
    advance: Callable[[int], None] | None = None,  # told the samples of each batch done (a progress bar)
) -> tuple[dict[str, float], EvalOutputs]:
    """The task's validation metrics (graft/tasks/: plain loss, no smoothing, and accuracy, mAP or MAE); and
    per sample, in validation-set order, the loss, prediction and its confidence (for the worst-mistakes
    gallery) and the logits (for calibration).
    Under torchrun each rank evaluates its share of the set; the per-sample outputs are gathered back into
    validation-set order on every rank, and the metrics computed from all of them."""
    model = distributed.unwrap(model)  # no DDP in evaluation: ranks may hold shares one sample apart
    model.eval()
    per_sample: list[tuple[torch.Tensor, ...]] = []
    loader.sampler.set_epoch(0)
    for batch, (x, targets) in enumerate(loader):
        if batch == 1:
            fault("validation")
        x = to_device(x, device)
        targets = targets.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(x).float()
        preds, confidence = task.predictions(logits)
        per_sample.append((task.sample_losses(logits, targets), preds, targets, confidence, logits))
        if advance is not None:
            advance(len(targets) * distributed.world_size())
    columns = distributed.gather_in_order(
        [torch.cat(column).cpu() for column in zip(*per_sample, strict=True)]
    )
    if loader.sampler.lengths is not None:  # evaluated sorted by length (texts): back to validation order
        columns = [in_dataset_order(c, loader.sampler.order()) for c in columns]
    outputs = EvalOutputs(*columns)
    return task.metrics(outputs.logits, outputs.targets), outputs
