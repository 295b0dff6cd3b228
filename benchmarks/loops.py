"""The three contenders of `python -m benchmarks`: a hand-written loop, graft, and PyTorch Lightning.

Each trains full fine-tuning of the same prepared model (see _common.py) for `epochs` epochs and returns a
`Result`: training throughput per epoch (samples over the training steps' wall time, validation and
checkpointing excluded), validation accuracy per epoch, and when each epoch ended, counted from the call
(model building included, as `graft.train` includes it).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from benchmarks._common import Result, prepare_on, settings


def plain_run(data: Path, epochs: int, out: Path) -> Result:
    """The floor: the loop people write by hand (torchvision's reference train.py, minus its flags).
    Validation and a torch.save checkpoint after each epoch; no logging."""
    from graft.runtime import autocast

    started = time.perf_counter()
    p = prepare_on(data, epochs)
    model, optimizer, schedule, device = p.model, p.optimizer, p.schedule, p.device
    inputs = p.inputs_for(p.stages[0])
    assert inputs.net is model and not p.staging.frozen_modules, "full fine-tuning trains the whole model"
    smoothing, clip = p.cfg.optim.label_smoothing, p.cfg.optim.clip_grad_norm
    # The optimizer's parameter order, as graft and Lightning clip: the same float sums, the same run.
    params = [param for group in optimizer.param_groups for param in group["params"]]
    result, step = Result(), 0
    out.mkdir(parents=True)
    for epoch in range(epochs):
        model.train()
        inputs.train.sampler.set_epoch(epoch)  # the same per-epoch order as graft's loop
        epoch_started, seen = time.perf_counter(), 0
        for x, y in inputs.train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, p.amp_dtype):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
            loss.backward()
            if clip is not None:  # graft's default recipe clips the gradient norm at 1.0
                torch.nn.utils.clip_grad_norm_(params, clip)
            schedule.apply(optimizer, step)  # what LambdaLR would do, on the same curve
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += len(y)
        result.samples_per_s.append(seen / (time.perf_counter() - epoch_started))
        result.val_acc.append(accuracy(model, inputs.val, device, p.amp_dtype))
        result.epoch_end.append(time.perf_counter() - started)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1},
                   out / "checkpoint.pt")  # fmt: skip
    return result


@torch.inference_mode()
def accuracy(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype) -> float:
    from graft.runtime import autocast

    model.eval()
    loader.sampler.set_epoch(0)
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with autocast(device, amp_dtype):
            correct += (model(x).argmax(dim=1) == y).sum().item()
        total += len(y)
    return correct / total


def graft_run(data: Path, epochs: int, out: Path, strategy: str = "full") -> Result:
    """`graft.train` with its defaults: TensorBoard + CSV logging, histograms, images, graph, an
    epoch-end checkpoint (last + best), the bundle and the evaluation report at the end."""
    from rich.console import Console

    import graft

    started = time.time()  # history's wall_time is time.time()
    with open(os.devnull, "w") as quiet:  # the suite prints its tables, not graft's run header
        run = graft.train(data, out=out, console=Console(file=quiet), **settings(epochs, strategy))
    return Result(
        [h["samples_per_s"] for h in run.history],
        [h["val_acc"] for h in run.history],
        [h["wall_time"] - started for h in run.history],
    )


def lightning_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("lightning") is not None


def lightning_run(data: Path, epochs: int, out: Path) -> Result:
    """Lightning's Trainer on the same model, loaders and optimizer: TensorBoard + CSV loggers logging the
    train loss every 10 steps (graft's cadence), ModelCheckpoint keeping the best and the last epoch."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    started = time.perf_counter()
    threads = torch.get_num_threads()
    p = prepare_on(data, epochs)
    inputs = p.inputs_for(p.stages[0])
    # Lightning keeps the mode a module arrives in (prepare's input-size check left it in eval); a model
    # built by hand starts in train mode, so this is what a Lightning user's run sees.
    p.model.train()
    module = _lightning_module(L)(p, started)
    precision = {torch.bfloat16: "bf16-mixed", torch.float16: "16-mixed"}.get(p.amp_dtype, "32-true")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if p.device.type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        logger=[TensorBoardLogger(out, name="tb"), CSVLogger(out, name="csv")],
        callbacks=[
            ModelCheckpoint(out / "checkpoints", monitor="val_acc", mode="max", save_top_k=1, save_last=True)
        ],
        log_every_n_steps=10,
        gradient_clip_val=p.cfg.optim.clip_grad_norm,  # the same recipe: norm clipping at 1.0
        gradient_clip_algorithm="norm",
        enable_progress_bar=False,  # off for all three: graft runs quiet too
        enable_model_summary=False,
        default_root_dir=out,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        trainer.fit(module, train_dataloaders=inputs.train, val_dataloaders=inputs.val)
    assert torch.get_num_threads() == threads, "Lightning changed the thread count: not a fair comparison"
    return module.result


def _lightning_module(L):
    """The LightningModule class, defined once lightning is imported (it is an optional dependency)."""
    from torchmetrics.classification import MulticlassAccuracy

    # "GPU available: False, used: False" and friends: the suite prints its own lines only.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    class Classifier(L.LightningModule):
        def __init__(self, p, started: float):
            super().__init__()
            self.net = p.model
            self.prepared_optimizer, self.schedule = p.optimizer, p.schedule
            self.smoothing = p.cfg.optim.label_smoothing
            self.val_accuracy = MulticlassAccuracy(num_classes=len(p.spec.classes), average="micro")
            self.result, self.started = Result(), started
            self.epoch_started = self.last_step_end = 0.0
            self.seen = 0

        def configure_optimizers(self):
            lr = torch.optim.lr_scheduler.LambdaLR(self.prepared_optimizer, self.schedule.factor)
            return {
                "optimizer": self.prepared_optimizer,
                "lr_scheduler": {"scheduler": lr, "interval": "step"},
            }

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x).float(), y, label_smoothing=self.smoothing)
            self.log("train_loss", loss)
            return loss

        def on_train_epoch_start(self):
            self.epoch_started, self.seen = time.perf_counter(), 0

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.seen += len(batch[1])
            self.last_step_end = time.perf_counter()

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x).float()
            self.val_accuracy.update(logits, y)
            self.log("val_loss", F.cross_entropy(logits, y))

        def on_validation_epoch_end(self):
            acc = self.val_accuracy.compute()
            self.val_accuracy.reset()
            self.log("val_acc", acc)
            if self.trainer.sanity_checking:  # Lightning's default 2-batch check before training
                return
            self.result.samples_per_s.append(self.seen / (self.last_step_end - self.epoch_started))
            self.result.val_acc.append(acc.item())
            self.result.epoch_end.append(time.perf_counter() - self.started)

    return Classifier
