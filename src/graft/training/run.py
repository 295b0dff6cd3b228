"""A whole run, from a resolved Config to a run directory with checkpoints, metrics and a bundle.

Everything that can fail on user input (data, model name, output folder) is checked before the first
byte is written, so a mistake never leaves a half-made run directory behind.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from graft.checkpointing.checkpoint import atomic_link, atomic_save, load_checkpoint
from graft.config import Config, config_to_dict, save_config
from graft.data.discover import DataSpec, discover
from graft.data.images import ImageDataset, create_loader, create_transforms, default_num_workers
from graft.errors import GraftError
from graft.export.bundle import write_bundle
from graft.models.registry import create_model
from graft.models.vision import BuiltModel
from graft.monitoring.console import Progress, format_seconds, make_console
from graft.monitoring.logger import create_logger
from graft.training.loop import StepConfig, fit
from graft.training.optim import create_optimizer, create_scheduler
from graft.training.runtime import resolve_amp, resolve_device, seed_everything
from graft.training.state import TrainState


@dataclass
class Run:
    """The result of `graft.train`: where it is and how it went."""

    path: Path
    config: Config
    classes: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None

    @property
    def bundle(self) -> Path:
        return self.path / "model"

    def load(self, device: str = "auto"):  # -> Predictor (imported lazily: predict needs no training code)
        from graft.inference import Predictor

        return Predictor.from_path(self.bundle, device=device)


def discover_data(cfg: Config) -> DataSpec:
    if cfg.data.path is None:
        raise GraftError("no training data given: pass DATA, a folder of class sub-folders or a CSV")
    return discover(cfg.data.path, cfg.data.val, cfg.data.val_split, cfg.train.seed)


def run_training(cfg: Config, console: Console | None = None, spec: DataSpec | None = None) -> Run:
    """Train per `cfg`. `spec` is the already-discovered data, when the caller checked it first."""
    console = console or make_console()
    spec = spec or discover_data(cfg)
    run_dir = _claim_run_dir(cfg)

    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = resolve_device(cfg.train.device)
    amp_dtype = resolve_amp(cfg.train.amp, device)
    built = create_model(
        cfg.model.name,
        len(spec.classes),
        cfg.model.pretrained,
        cfg.model.weights,
        cfg.model.drop_rate,
        cfg.data.img_size,
    )
    model = built.model.to(device)

    num_workers = default_num_workers() if cfg.data.num_workers is None else cfg.data.num_workers
    train_tf, eval_tf = create_transforms(built.data_config, cfg.data.augment)
    pin = device.type == "cuda"
    train_loader = create_loader(
        ImageDataset(spec.train, train_tf), cfg.train.batch_size, True, num_workers, cfg.train.seed, pin
    )
    val_loader = create_loader(
        ImageDataset(spec.val, eval_tf), cfg.train.batch_size, False, num_workers, cfg.train.seed, pin
    )
    steps_per_epoch = math.ceil(len(train_loader) / cfg.train.accum_steps)

    optimizer = create_optimizer(cfg.optim, model)
    scheduler = create_scheduler(cfg.optim, optimizer, steps_per_epoch, cfg.train.epochs)
    # GradScaler only matters for fp16; with bf16 or fp32 it is a pass-through.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    # Resolve the "auto" values so config.yaml says exactly what ran.
    cfg = cfg.model_copy(deep=True)
    cfg.out = run_dir
    cfg.data.img_size = built.data_config["input_size"][-1]
    cfg.data.num_workers = num_workers
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    _write_split(spec, run_dir / "split.csv")
    _print_header(console, cfg, spec, built, device, amp_dtype, run_dir)

    ckpt_dir = run_dir / "checkpoints"
    config_dict = config_to_dict(cfg)

    def save_checkpoint(state: TrainState, improved: bool) -> None:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "metric": {cfg.checkpoint.monitor: state.history[-1][cfg.checkpoint.monitor]},
            "state": state.to_dict(),
            "config": config_dict,
            "classes": spec.classes,
        }
        atomic_save(payload, ckpt_dir / "last.pt")
        if improved:  # best.pt becomes a hard link to this last.pt: no second write
            atomic_link(ckpt_dir / "last.pt", ckpt_dir / "best.pt")

    logger = create_logger(cfg.log, run_dir)
    started = time.perf_counter()
    try:
        state = fit(
            model,
            train_loader,
            val_loader,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            state=TrainState(),
            epochs=cfg.train.epochs,
            num_classes=len(spec.classes),
            step_cfg=StepConfig(
                device=device,
                amp_dtype=amp_dtype,
                accum_steps=cfg.train.accum_steps,
                clip_grad_norm=cfg.optim.clip_grad_norm,
                label_smoothing=cfg.optim.label_smoothing,
                log_every=cfg.log.every_n_steps,
            ),
            monitor=cfg.checkpoint.monitor,
            logger=logger,
            progress=Progress(console, cfg.log.quiet),
            on_epoch_end=save_checkpoint,
        )
    finally:
        logger.close()

    # The bundle is the best epoch's model, not the last one's.
    best = load_checkpoint(ckpt_dir / "best.pt")
    model.load_state_dict(best["model"])
    best_record = state.history[best["epoch"] - 1]
    write_bundle(
        run_dir / "model",
        built,
        model.cpu(),
        spec.classes,
        metrics={k: best_record[k] for k in ("epoch", "val_loss", "val_acc")},
        source={"run": str(run_dir), "data": str(cfg.data.path)},
    )
    monitor = cfg.checkpoint.monitor
    console.print(
        f"best {monitor} {_fmt_metric(monitor, state.best_metric)} at epoch {state.best_epoch}/{cfg.train.epochs}; "
        f"bundle {run_dir / 'model'} built from checkpoints/best.pt "
        f"({format_seconds(time.perf_counter() - started)} in all)",
        highlight=False,
    )
    return Run(run_dir, cfg, spec.classes, state.history, state.best_metric, state.best_epoch)


def _claim_run_dir(cfg: Config) -> Path:
    if cfg.out is not None:
        run_dir = Path(cfg.out)
    else:
        data_name = Path(cfg.data.path).stem or "data"
        model_name = Path(cfg.model.name).name.replace(":", "-")
        run_dir = Path("runs") / f"{data_name}-{model_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "config.yaml").exists():
        raise GraftError(f"{run_dir} already holds a run; choose another --out (nothing was changed)")
    if run_dir.exists() and not run_dir.is_dir():
        raise GraftError(f"--out {run_dir} is a file, not a folder")
    return run_dir


def _write_split(spec: DataSpec, path: Path) -> None:
    """The exact train/val files of this run; itself a valid `graft train` CSV (path,label,split)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        for split, samples in (("train", spec.train), ("val", spec.val)):
            writer.writerows([str(s.path.resolve()), spec.classes[s.label], split] for s in samples)


def _print_header(
    console: Console,
    cfg: Config,
    spec: DataSpec,
    built: BuiltModel,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    run_dir: Path,
) -> None:
    params = sum(p.numel() for p in built.model.parameters())
    size = built.data_config["input_size"]
    rows: list[tuple[str, Any]] = [
        (
            "data",
            f"{spec.description}: {len(spec.classes)} classes, {len(spec.train)} train / {len(spec.val)} val",
        ),
        (
            "model",
            f"{cfg.model.name} ({built.family} {built.arch}, {params / 1e6:.1f}M params) from {built.weights}",
        ),
        (
            "input",
            f"{size[1]}x{size[2]} {built.data_config['interpolation']}, "
            f"augment {'on' if cfg.data.augment.enabled else 'off'}",
        ),
        (
            "train",
            f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}"
            f"{f' x {cfg.train.accum_steps} accumulated' if cfg.train.accum_steps > 1 else ''}, "
            f"{cfg.optim.name} lr {cfg.optim.lr:g} {cfg.optim.scheduler}, on {device}"
            f"{' with ' + str(amp_dtype).split('.')[-1] + ' autocast' if amp_dtype else ''}",
        ),
        ("run", str(run_dir)),
    ]
    for key, value in rows:
        console.print(f"[bold]{key:<6}[/bold] {value}", highlight=False)
    for warning in spec.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)


def _fmt_metric(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if name.endswith("acc") else f"{value:.4f}"
