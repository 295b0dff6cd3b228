"""A whole run, from a resolved Config to a run directory with checkpoints, metrics and a bundle.

Everything that can fail on user input (data, model name and input size, output folder) is checked
before the first byte is written, so a mistake never leaves a half-made run directory behind; and a
run folder that already holds anything is never written into.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from graft.checkpointing.checkpoint import atomic_link, atomic_save, load_checkpoint
from graft.config import Config, config_to_dict, save_config
from graft.data.discover import DataSpec, discover
from graft.errors import GraftError
from graft.export.bundle import write_bundle
from graft.models.vision import BuiltModel
from graft.monitoring.console import Progress, format_seconds, make_console
from graft.monitoring.logger import create_logger
from graft.strategies.plan import describe
from graft.training.loop import StepConfig, fit
from graft.training.setup import Prepared, prepare
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
    run_dir = claim_run_dir(default_run_dir(cfg) if cfg.out is None else Path(cfg.out))
    p = prepare(cfg, spec)
    cfg, model, optimizer, schedule, scaler = p.cfg, p.model, p.optimizer, p.schedule, p.scaler
    cfg.out = run_dir

    ckpt_dir = run_dir / "checkpoints"
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GraftError(
            f"cannot create run directory {run_dir}: {err.strerror}; choose another --out"
        ) from None
    save_config(cfg, run_dir / "config.yaml")
    _write_split(spec, run_dir / "split.csv")
    _print_header(console, p, run_dir)
    config_dict = config_to_dict(cfg)

    def save_checkpoint(state: TrainState, improved: bool) -> None:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.to_dict(),
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
            inputs_for=p.inputs_for,
            staging=p.staging,
            optimizer=optimizer,
            schedule=schedule,
            scaler=scaler,
            state=TrainState(),
            epochs=cfg.train.epochs,
            num_classes=len(spec.classes),
            step_cfg=StepConfig(
                device=p.device,
                amp_dtype=p.amp_dtype,
                accum_steps=cfg.train.accum_steps,
                clip_grad_norm=cfg.optim.clip_grad_norm,
                label_smoothing=cfg.optim.label_smoothing,
                log_every=cfg.log.every_n_steps,
                base_lr=cfg.optim.lr,
            ),
            monitor=cfg.checkpoint.monitor,
            logger=logger,
            progress=Progress(console, cfg.log.quiet),
            on_epoch_end=save_checkpoint,
        )
    except KeyboardInterrupt:
        # Whatever finished epochs produced is still a usable model: bundle it before leaving.
        if (ckpt_dir / "best.pt").exists():
            best = _bundle_best(run_dir, p.built, model, spec, cfg)
            console.print(
                f"interrupted: bundle {run_dir / 'model'} built from the best finished epoch ({best})"
            )
        else:
            console.print(f"interrupted before the first epoch finished; nothing to bundle in {run_dir}")
        raise
    finally:
        logger.close()

    best = _bundle_best(run_dir, p.built, model, spec, cfg)
    console.print(
        f"best {best}; bundle {run_dir / 'model'} built from checkpoints/best.pt "
        f"({format_seconds(time.perf_counter() - started)} in all)",
        highlight=False,
    )
    return Run(run_dir, cfg, spec.classes, state.history, state.best_metric, state.best_epoch)


def default_run_dir(cfg: Config) -> Path:
    data_name = Path(cfg.data.path).stem or "data"
    model_name = Path(cfg.model.name).name.replace(":", "-")
    return Path("runs") / f"{data_name}-{model_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_run_dir(run_dir: Path) -> Path:
    """Check that `run_dir` can become a new run: absent or empty, and creatable. Creates nothing."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise GraftError(f"--out {run_dir} is a file, not a folder")
        if any(run_dir.iterdir()):
            what = "a run" if (run_dir / "config.yaml").exists() else "files"
            raise GraftError(f"{run_dir} already holds {what}; choose another --out (nothing was changed)")
    parent = run_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GraftError(f"cannot create {run_dir}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GraftError(f"cannot create {run_dir}: no write permission in {parent}; choose another --out")
    return run_dir


def _bundle_best(run_dir: Path, built: BuiltModel, model: nn.Module, spec: DataSpec, cfg: Config) -> str:
    """Write the bundle from checkpoints/best.pt (not from the last epoch); returns what 'best' was."""
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    record = best["state"]["history"][best["epoch"] - 1]
    model.load_state_dict(best["model"])
    write_bundle(
        run_dir / "model",
        built,
        model.cpu(),
        spec.classes,
        metrics={k: record[k] for k in ("epoch", "val_loss", "val_acc")},
        source={"run": str(run_dir), "data": str(cfg.data.path)},
    )
    monitor = cfg.checkpoint.monitor
    value = record[monitor]
    shown = f"{value:.2%}" if monitor.endswith("acc") else f"{value:.4f}"
    return f"{monitor} {shown} at epoch {best['epoch']}/{cfg.train.epochs}"


def _write_split(spec: DataSpec, path: Path) -> None:
    """The exact train/val files of this run; itself a valid `graft train` CSV (path,label,split)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        for split, samples in (("train", spec.train), ("val", spec.val)):
            writer.writerows([str(s.path.resolve()), spec.classes[s.label], split] for s in samples)


def _print_header(console: Console, p: Prepared, run_dir: Path) -> None:
    cfg, built, spec = p.cfg, p.built, p.spec
    params = sum(x.numel() for x in built.model.parameters())
    size = built.data_config["input_size"]
    accumulated = f" x {cfg.train.accum_steps} accumulated" if cfg.train.accum_steps > 1 else ""
    autocast = f" with {str(p.amp_dtype).split('.')[-1]} autocast" if p.amp_dtype else ""
    lr = f"lr {cfg.optim.lr:g}" + (" (from the LR range test)" if p.lr_find else "")
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
            f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}{accumulated}, "
            f"{cfg.optim.name} {lr} {cfg.optim.scheduler}, on {p.device}{autocast}",
        ),
    ]
    if p.advice is not None:
        rows.append(("auto", f"{p.advice.strategy}: {p.advice.reason}"))
        (run_dir / "advice.json").write_text(json.dumps(p.advice.to_dict(), indent=2))
    rows.append(("stages", describe(cfg.strategy.name, p.stages, p.groups)))
    if p.cache_note:
        rows.append(("cache", f"head-only epochs train on {p.cache_note}"))
    if p.lr_find is not None:
        rows.append(
            (
                "lr",
                f"range test suggests {p.lr_find.suggestion:.2g}; plot {p.lr_find.plot(run_dir / 'lr_find.png')}",
            )
        )
    rows.append(("run", str(run_dir)))
    for key, value in rows:
        console.print(f"[bold]{key:<6}[/bold] {value}", highlight=False)
    for warning in spec.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
