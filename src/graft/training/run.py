"""A whole run, from a resolved Config to a run directory with checkpoints, metrics and a bundle.

Everything that can fail on user input (data, model name and input size, output folder) is checked
before the first byte is written, so a mistake never leaves a half-made run directory behind; and a
run folder that already holds anything is never written into.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from graft.checkpointing.store import Checkpoint, CheckpointStore
from graft.config import Config, config_to_dict, lookup, save_config
from graft.data.check import check_for_training
from graft.data.discover import DataSpec, discover_config
from graft.errors import GraftError
from graft.evaluation.evaluate import report_after_training
from graft.export.bundle import write_bundle
from graft.monitoring.console import Progress, format_seconds, make_console
from graft.monitoring.logger import MetricLogger, create_logger, rewrite_csv
from graft.monitoring.monitor import Monitor
from graft.monitoring.status import error_line, mark_ended, mark_running
from graft.strategies.plan import describe
from graft.training import distributed
from graft.training.checkpoints import RunCheckpoints, restore
from graft.training.guards import check_run_space, explain_failure
from graft.training.loop import StepConfig, fit
from graft.training.run_dir import claim_run_dir, default_run_dir, write_split
from graft.training.setup import Prepared, prepare
from graft.training.signals import GracefulStop
from graft.training.state import TrainState, resolve_mode


@dataclass
class Run:
    """The result of `graft.train`: where it is and how it went."""

    path: Path
    config: Config
    classes: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    stopped: str | None = None  # why it ended before its last epoch: "SIGTERM", "SIGINT", "early stopping"
    checkpoint_seconds: float = 0.0  # time this process spent writing checkpoints
    checkpoints_written: int = 0
    task: str = "image"  # or "text"

    @property
    def bundle(self) -> Path:
        return self.path / "model"

    def load(self, device: str = "auto"):  # -> Predictor (imported lazily: predict needs no training code)
        from graft.inference import Predictor

        return Predictor.from_path(self.bundle, device=device)


def discover_data(cfg: Config) -> DataSpec:
    return discover_config(cfg)


def run_training(
    cfg: Config,
    console: Console | None = None,
    spec: DataSpec | None = None,
    resume: Checkpoint | None = None,
) -> Run:
    """Train per `cfg`, or continue the run that `resume` (a verified checkpoint of `cfg.out`) belongs to.
    `spec` is the already-discovered data, when the caller checked it first."""
    distributed.init(cfg.train.device)  # under torchrun: join the other ranks (a no-op otherwise)
    main = distributed.is_main()  # only rank 0 writes files and prints
    console = console or make_console()
    spec = spec or discover_data(cfg)
    if resume is None:  # a resumed run trains on its split.csv, checked when the run began
        spec = check_for_training(cfg, spec, console if main else Console(quiet=True))
    run_dir = (
        Path(cfg.out)
        if resume
        else distributed.on_main(
            lambda: claim_run_dir(default_run_dir(cfg) if cfg.out is None else Path(cfg.out))
        )
    )
    p = prepare(cfg, spec)
    cfg = p.cfg
    cfg.out = run_dir
    state = restore(p, resume) if resume else TrainState()
    if not main:  # the other ranks train in silence: no console, no log sinks (their cfg is never saved)
        console = Console(quiet=True)
        silent = {"sinks": [], "histogram_every_n_steps": 0, "images": 0, "graph": False}
        cfg.log = cfg.log.model_copy(update=silent)
    elif resume is None:
        check_run_space(run_dir, sum(x.numel() for x in p.model.parameters()), cfg.checkpoint.keep_top_k)
        try:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GraftError(
                f"cannot create run directory {run_dir}: {err.strerror}; choose another --out"
            ) from None
        write_split(spec, run_dir / "split.csv")
    else:  # the checkpoint's history is the truth: drop rows logged after it (a crash between log and save)
        rewrite_csv(run_dir / "metrics.csv", state.history)
    if main:
        save_config(cfg, run_dir / "config.yaml")
        _print_header(console, p, run_dir, resume, state)
    distributed.barrier()  # the run folder exists before any rank writes into it

    mark_running(run_dir, cfg.train.epochs)  # `graft runs` tells running from crashed by this pid
    mode = resolve_mode(cfg.checkpoint.monitor, cfg.checkpoint.mode)
    checkpoints = RunCheckpoints(CheckpointStore(run_dir / "checkpoints"), p, mode)
    # On resume, TensorBoard drops events logged after the checkpoint, so no curve doubles back.
    logger = create_logger(
        cfg.log, run_dir, purge_step=state.step + 1 if resume else None, config=config_to_dict(cfg)
    )
    monitor = _create_monitor(p, logger)
    for sink in logger.sinks:
        if getattr(sink, "note", None):
            console.print(f"[bold]{'log':<6}[/bold] {sink.note}", highlight=False)
    started = time.perf_counter()
    with GracefulStop() as stop:
        try:
            if resume is None and main:
                monitor.start(
                    (run_dir / "config.yaml").read_text(),
                    _strategy_text(p),
                    _example_input(p),
                )
                for note in monitor.notes:
                    console.print(f"[yellow]note[/yellow] {note}", highlight=False)
            state = fit(
                p.model,
                inputs_for=p.inputs_for,
                staging=p.staging,
                optimizer=p.optimizer,
                schedule=p.schedule,
                scaler=p.scaler,
                state=state,
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
                    skip_nonfinite=cfg.train.skip_nonfinite,
                    class_weights=p.class_weights,
                ),
                metric=cfg.checkpoint.monitor,
                mode=mode,
                patience=cfg.train.patience,
                min_delta=cfg.train.min_delta,
                monitor=monitor,
                progress=Progress(console, cfg.log.quiet),
                checkpoints=checkpoints,
                stop=stop,
            )
            if state.history and not stop.requested:  # finished (or stopped early): results vs settings
                monitor.finish(_hparams(cfg), _results(state))
        except KeyboardInterrupt:  # a second Ctrl-C: stop now; still bundle what finished epochs produced
            mark_ended(run_dir, "stopped", "a second Ctrl-C")  # resumable from its last checkpoint, if any
            checkpoints.close()
            if main and checkpoints.store.read_index().best:
                best = _bundle_best(run_dir, p, console)
                console.print(
                    f"interrupted: bundle {run_dir / 'model'} built from the best finished epoch ({best})"
                )
            raise
        except Exception as err:
            mark_ended(run_dir, "failed", error_line(err))
            # Out of GPU memory, a DataLoader worker killed: one line saying what to change.
            explained = explain_failure(err, cfg.train.batch_size, cfg.train.accum_steps, p.device,
                                        (p.train_images, p.val_images))  # fmt: skip
            if explained is None:
                raise
            raise explained from None
        finally:
            logger.close()
            try:
                checkpoints.close()  # the write in flight completes (or raises its error) before anything else
            except Exception as err:
                mark_ended(run_dir, "failed", error_line(err))
                raise

    stopped = stop.requested or state.stop_reason
    ending = ("stopped" if stop.requested else "finished", stopped)
    if stop.requested:
        console.print(
            f"stopped by {stop.requested} at step {state.step} (epoch {state.epoch + 1}, batch {state.batch_in_epoch}); "
            f"checkpoint {checkpoints.saved[-1] if checkpoints.saved else 'none'} written. "
            f"Resume with: graft resume {run_dir}",
            highlight=False,
        )
    elif state.stop_reason:
        console.print(
            f"early stopping: {cfg.checkpoint.monitor} did not improve by more than {cfg.train.min_delta:g} "
            f"for {state.bad_epochs} epochs",
            highlight=False,
        )
    run = Run(run_dir, cfg, spec.classes, state.history, state.best_metric, state.best_epoch, stopped,
              checkpoints.seconds, len(checkpoints.saved), spec.task)  # fmt: skip
    if not main:  # rank 0 bundles and reports
        return run
    if state.best_checkpoint is None:
        mark_ended(run_dir, *ending)
        return run
    best = _bundle_best(run_dir, p, console)
    mark_ended(run_dir, *ending)  # after the bundle: a "finished" run has its model/
    elapsed = time.perf_counter() - started
    console.print(
        f"best {best}; bundle {run_dir / 'model'} built from the best checkpoint ({state.best_checkpoint}) "
        f"({format_seconds(elapsed)} in all; {len(checkpoints.saved)} checkpoints written in "
        f"{checkpoints.seconds:.1f}s, {checkpoints.seconds / max(elapsed, 1e-9):.1%})",
        highlight=False,
    )
    if not stop.requested:  # a stop request wants the process gone soon; `graft eval RUN` writes it later
        report_after_training(run_dir, console, str(p.device), cfg.data.num_workers)
    return run


def _create_monitor(p: Prepared, logger: MetricLogger) -> Monitor:
    dc = p.built.data_config
    if p.spec.task == "text":
        return Monitor(logger, p.cfg.log, p.model, p.groups, p.spec.classes,
                       train_texts=p.spec.train, val_texts=p.spec.val)  # fmt: skip
    return Monitor(logger, p.cfg.log, p.model, p.groups, p.spec.classes, dc["mean"], dc["std"],
                   p.train_images, p.val_images)  # fmt: skip


def _example_input(p: Prepared) -> torch.Tensor | None:
    """What add_graph traces with; None for text models (transformers' dict inputs do not trace cleanly)."""
    if p.spec.task == "text":
        return None
    return torch.zeros(1, *p.built.data_config["input_size"], device=p.device)


def _strategy_text(p: Prepared) -> str:
    """The strategy explanation for the logs (TensorBoard text, W&B summary): what was chosen, why, and
    what the advisor measured."""
    text = f"**{p.cfg.strategy.name}**: {describe(p.cfg.strategy.name, p.stages, p.groups)}"
    if p.advice is not None:
        measured = json.dumps(p.advice.to_dict(), indent=2, default=str)
        text += f"\n\nchosen by --strategy auto: {p.advice.reason}\n\n" + "\n".join(
            "    " + line for line in measured.splitlines()
        )
    return text


# The settings that differ between runs people compare; TensorBoard's HPARAMS tab gets one column each.
HPARAMS = ("model.name", "strategy.name", "strategy.layer_decay", "optim.name", "optim.lr",
           "optim.weight_decay", "optim.label_smoothing", "train.epochs", "train.batch_size", "data.img_size",
           "data.augment.enabled", "train.seed")  # fmt: skip


def _hparams(cfg: Config) -> dict[str, Any]:
    return {key: _plain(lookup(cfg, key)) for key in HPARAMS}


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _results(state: TrainState) -> dict[str, float]:
    best = state.history[state.best_epoch - 1] if state.best_epoch else state.history[-1]
    last = state.history[-1]
    return {
        "hparam/best_val_acc": best["val_acc"],
        "hparam/best_val_loss": best["val_loss"],
        "hparam/final_val_acc": last["val_acc"],
        "hparam/epochs_trained": float(last["epoch"]),
    }


def _bundle_best(run_dir: Path, p: Prepared, console: Console) -> str:
    """Write the bundle from the best checkpoint (not the last epoch); returns what 'best' was.

    If the best checkpoint is damaged, the newest intact one is bundled instead, and the user told so."""
    store = CheckpointStore(run_dir / "checkpoints")
    name = store.read_index().best
    problem = store.verify(name) if name else "no best checkpoint recorded"
    if problem:
        console.print(
            f"[yellow]warning[/yellow] best checkpoint {name}: {problem}; bundling the newest intact one"
        )
        checkpoint = store.latest_good()
    else:
        checkpoint = store.load(name)
    progress = checkpoint.state["progress"]
    epoch = progress["best_epoch"] if not problem else progress["epoch"]
    record = progress["history"][epoch - 1]
    p.model.load_state_dict(checkpoint.model)
    write_bundle(
        run_dir / "model",
        p.built,
        p.model.cpu(),
        p.spec.classes,
        metrics={k: record[k] for k in ("epoch", "val_loss", "val_acc")},
        source={"run": str(run_dir), "data": str(p.cfg.data.path), "checkpoint": checkpoint.name},
        tokenizer=p.tokenizer,
    )
    monitor = p.cfg.checkpoint.monitor
    shown = f"{record[monitor]:.2%}" if monitor.endswith("acc") else f"{record[monitor]:.4f}"
    return f"{monitor} {shown} at epoch {epoch}/{p.cfg.train.epochs}"


def _input_line(p: Prepared) -> str:
    if p.spec.task == "text":
        bucketed = ", batches bucketed by length" if p.cfg.data.bucket_by_length else ""
        return f"text, up to {p.cfg.data.max_length} tokens, padded per batch{bucketed}"
    size = p.built.data_config["input_size"]
    augment = "on" if p.cfg.data.augment.enabled else "off"
    return f"{size[1]}x{size[2]} {p.built.data_config['interpolation']}, augment {augment}"


def _print_header(
    console: Console, p: Prepared, run_dir: Path, resume: Checkpoint | None, state: TrainState
) -> None:
    cfg, built, spec = p.cfg, p.built, p.spec
    params = sum(x.numel() for x in built.model.parameters())
    accumulated = f" x {cfg.train.accum_steps} accumulated" if cfg.train.accum_steps > 1 else ""
    if distributed.world_size() > 1:
        accumulated += f" x {distributed.world_size()} processes"
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
        ("input", _input_line(p)),
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
        rows.append(("cache", p.cache_note))
    if p.lr_find is not None:
        rows.append(
            (
                "lr",
                f"range test suggests {p.lr_find.suggestion:.2g}; plot {p.lr_find.plot(run_dir / 'lr_find.png')}",
            )
        )
    rows.append(("run", str(run_dir)))
    if resume is not None:
        position = (
            f"epoch {state.epoch + 1}, batch {state.batch_in_epoch}"
            if state.batch_in_epoch
            else f"epoch {state.epoch + 1}"
        )
        rows.append(("resume", f"from {resume.name} (step {state.step}): continuing at {position}"))
    for key, value in rows:
        console.print(f"[bold]{key:<6}[/bold] {value}", highlight=False)
    for warning in [*spec.warnings, *p.data_notes]:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
