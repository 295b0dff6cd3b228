"""A whole run, from a resolved Config to a run directory with checkpoints, metrics and a bundle.

Everything that can fail on user input (data, model name and input size, output folder) is checked
before the first byte is written, so a mistake never leaves a half-made run directory behind; and a
run folder that already holds anything is never written into.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from graft.config import Config, config_to_dict, save_config
from graft.data.check import check_for_training
from graft.data.discover import DataSpec, discover_config
from graft.errors import GraftError
from graft.evaluation.evaluate import report_after_training
from graft.monitoring.console import Progress, format_seconds, make_console
from graft.monitoring.csv_sink import rewrite_csv
from graft.monitoring.logger import MetricLogger, create_logger
from graft.monitoring.monitor import Monitor
from graft.runs.best import resolve_mode
from graft.runs.folder import RunFolder
from graft.runs.status import error_line, mark_ended, mark_running
from graft.runs.store import Checkpoint, CheckpointStore
from graft.training import distributed
from graft.training.checkpoints import RunCheckpoints, restore
from graft.training.guards import check_run_space, explain_failure
from graft.training.loop import StepConfig, fit
from graft.training.prepare import Prepared, plan_training, probe_on_data
from graft.training.signals import GracefulStop
from graft.training.state import TrainState
from graft.workflow.bundle import describe_bundle, load_best, val_logits, write_run_bundle
from graft.workflow.header import example_input, hparams, print_header, record_outcome, results, strategy_text
from graft.workflow.run_dir import claim_run_dir, default_run_dir, write_split


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
    first_bundle_seconds: float | None = None  # from the start of the run to the probe's bundle
    seconds: float | None = None  # the whole run, report included

    @property
    def bundle(self) -> Path:
        return RunFolder(self.path).bundle

    def load(self, device: str = "auto"):  # -> Predictor (imported lazily: predict needs no training code)
        from graft.predict.images import Predictor

        return Predictor.from_path(self.bundle, device=device)


def run_training(
    cfg: Config,
    console: Console | None = None,
    spec: DataSpec | None = None,
    resume: Checkpoint | None = None,
) -> Run:
    """Train per `cfg`, or continue the run that `resume` (a verified checkpoint of `cfg.out`) belongs to.
    `spec` is the already-discovered data, when the caller checked it first."""
    started = time.perf_counter()
    distributed.init(cfg.train.device)  # under torchrun: join the other ranks (a no-op otherwise)
    main = distributed.is_main()  # only rank 0 writes files and prints
    console = console or make_console()
    spec = spec or discover_config(cfg)
    if resume is None:  # a resumed run trains on its split.csv, checked when the run began
        spec = check_for_training(cfg, spec, console if main else Console(quiet=True))
    run_dir = Path(cfg.out) if resume else distributed.on_main(
        lambda: claim_run_dir(default_run_dir(cfg) if cfg.out is None else Path(cfg.out)))  # fmt: skip
    probed = probe_on_data(cfg, spec, resuming=resume is not None, started=started)
    if main and resume is None:
        _create_run_dir(run_dir, spec, probed.md.model, cfg.checkpoint.keep_top_k)
    first_bundle_s, probe_calibration = None, None
    if probed.probe is not None and main:  # the first usable model, minutes before fine-tuning ends
        probe_calibration = write_run_bundle(run_dir, probed, probed.probe.record, PROBE_CHECKPOINT,
                                             probed.probe.outputs.logits, probed.probe.outputs.targets)  # fmt: skip
        first_bundle_s = time.perf_counter() - started
    p = plan_training(probed)
    cfg = p.cfg
    cfg.out = run_dir
    state = restore(p, resume) if resume else TrainState()
    if not main:  # the other ranks train in silence: no console, no log sinks (their cfg is never saved)
        console = Console(quiet=True)
        silent = {"sinks": [], "histogram_every_n_steps": 0, "images": 0, "graph": False}
        cfg.log = cfg.log.model_copy(update=silent)
    elif resume is not None:  # the checkpoint's history is the truth: drop rows logged after it
        rewrite_csv(RunFolder(run_dir).metrics, state.history)
    if main:
        save_config(cfg, RunFolder(run_dir).config)
        print_header(console, p, run_dir, resume, state, first_bundle_s)
    distributed.barrier()  # the run folder exists before any rank writes into it

    mark_running(run_dir, cfg.train.epochs)  # `graft runs` tells running from crashed by this pid
    mode = resolve_mode(cfg.checkpoint.monitor, cfg.checkpoint.mode)
    checkpoints = RunCheckpoints(CheckpointStore(RunFolder(run_dir).checkpoints), p, mode)
    # On resume, TensorBoard drops events logged after the checkpoint, so no curve doubles back.
    logger = create_logger(
        cfg.log, run_dir, purge_step=state.step + 1 if resume else None, config=config_to_dict(cfg)
    )
    monitor = _create_monitor(p, logger)
    for sink in logger.sinks:
        if getattr(sink, "note", None):
            console.print(f"[bold]{'log':<6}[/bold] {sink.note}", highlight=False)
    with GracefulStop() as stop:
        try:
            if resume is None and main:
                monitor.start(RunFolder(run_dir).config.read_text(), strategy_text(p), example_input(p))
                for note in monitor.notes:
                    console.print(f"[yellow]note[/yellow] {note}", highlight=False)
            if resume is None and p.probe is not None:
                _record_probe(p, state, monitor, checkpoints, mode)
            state = fit(p.model, inputs_for=p.inputs_for, staging=p.staging, optimizer=p.optimizer,
                        schedule=p.schedule, scaler=p.scaler, state=state, epochs=cfg.train.epochs,
                        num_classes=len(spec.classes), step_cfg=_step_config(p), metric=cfg.checkpoint.monitor,
                        mode=mode, patience=cfg.train.patience, min_delta=cfg.train.min_delta, monitor=monitor,
                        progress=Progress(console, cfg.log.quiet), checkpoints=checkpoints, stop=stop,
                        deadline=p.deadline)  # fmt: skip
            if state.history and not stop.requested:  # finished (or stopped early): results vs settings
                monitor.finish(hparams(cfg), results(state))
        except KeyboardInterrupt:  # a second Ctrl-C: stop now; still bundle what finished epochs produced
            mark_ended(run_dir, "stopped", "a second Ctrl-C")  # resumable from its last checkpoint, if any
            checkpoints.close()
            if main and checkpoints.store.read_index().best:
                checkpoint, record = load_best(run_dir, p, console)
                write_run_bundle(run_dir, p, record, checkpoint.name)  # no time for calibration
                console.print(f"interrupted: bundle {RunFolder(run_dir).bundle} built from the best finished epoch "
                              f"({describe_bundle(p, record, state.history)}), not calibrated")  # fmt: skip
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
    _say_why_stopped(console, cfg, state, stop, checkpoints, run_dir)
    run = Run(run_dir, cfg, spec.classes, state.history, state.best_metric, state.best_epoch, stopped,
              checkpoints.seconds, len(checkpoints.saved), spec.task, first_bundle_s)  # fmt: skip
    if state.best_checkpoint is None:
        mark_ended(run_dir, *ending)
        return run
    # Every rank takes part: the validation logits of the best model are a collective under torchrun,
    # once rank 0's last checkpoint write is complete.
    distributed.barrier()
    checkpoint, record = load_best(run_dir, p, console if main else Console(quiet=True))
    rewrite = not (record["epoch"] == 0 and first_bundle_s is not None)  # else: already bundled, calibrated
    logits, targets = val_logits(p, record["epoch"])
    if not main:  # rank 0 bundles and reports
        return run
    calibration = (
        write_run_bundle(run_dir, p, record, checkpoint.name, logits, targets)
        if rewrite
        else probe_calibration
    )
    bundled = logits / (
        calibration.temperature if calibration is not None else 1.0
    )  # what the bundle outputs
    mark_ended(run_dir, *ending)  # after the bundle: a "finished" run has its model/
    elapsed = time.perf_counter() - started
    calibrated = f", {calibration.summary()}" if calibration is not None and rewrite else ""
    outcome = describe_bundle(p, record, state.history)
    record_outcome(run_dir, int(record["epoch"]), outcome)
    console.print(
        f"best {outcome}; bundle {RunFolder(run_dir).bundle} from {checkpoint.name}"
        f"{calibrated} ({format_seconds(elapsed)} in all; {len(checkpoints.saved)} checkpoints written in "
        f"{checkpoints.seconds:.1f}s, {checkpoints.seconds / max(elapsed, 1e-9):.1%})",
        highlight=False,
    )
    if not stop.requested:  # a stop request wants the process gone soon; `graft eval RUN` writes it later
        report_after_training(run_dir, console, str(p.device), cfg.data.num_workers, bundled)
    run.seconds = time.perf_counter() - started
    return run


PROBE_CHECKPOINT = "step-000000"  # the probe is checkpointed at step 0, right after its bundle is written


def _create_run_dir(run_dir: Path, spec: DataSpec, model: torch.nn.Module, keep_top_k: int) -> None:
    check_run_space(run_dir, sum(x.numel() for x in model.parameters()), keep_top_k)
    try:
        RunFolder(run_dir).checkpoints.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GraftError(
            f"cannot create run directory {run_dir}: {err.strerror}; choose another --out"
        ) from None
    write_split(spec, RunFolder(run_dir).split)


def _record_probe(
    p: Prepared, state: TrainState, monitor: Monitor, checkpoints: RunCheckpoints, mode: str
) -> None:
    """The solved head as epoch 0: in the history, judged for best, logged and checkpointed like an epoch."""
    record = p.probe.record
    state.history.append(record)
    improved = state.update_best(record, p.cfg.checkpoint.monitor, mode)
    state.count_patience(record[p.cfg.checkpoint.monitor], None, mode, p.cfg.train.min_delta)
    monitor.end_epoch(record, 0, p.probe.outputs)
    checkpoints.save_epoch(state, improved)


def _step_config(p: Prepared) -> StepConfig:
    cfg = p.cfg
    return StepConfig(device=p.device, amp_dtype=p.amp_dtype, accum_steps=cfg.train.accum_steps,
                      clip_grad_norm=cfg.optim.clip_grad_norm, label_smoothing=cfg.optim.label_smoothing,
                      log_every=cfg.log.every_n_steps, base_lr=cfg.optim.lr, skip_nonfinite=cfg.train.skip_nonfinite,
                      class_weights=p.class_weights)  # fmt: skip


def _say_why_stopped(console, cfg, state, stop, checkpoints, run_dir) -> None:
    if stop.requested:
        console.print(
            f"stopped by {stop.requested} at step {state.step} (epoch {state.epoch + 1}, batch {state.batch_in_epoch}); "
            f"checkpoint {checkpoints.saved[-1] if checkpoints.saved else 'none'} written. "
            f"Resume with: graft resume {run_dir}",
            highlight=False,
        )
    elif state.stop_reason == "early stopping":
        console.print(
            f"early stopping: {cfg.checkpoint.monitor} did not improve by more than {cfg.train.min_delta:g} "
            f"for {state.bad_epochs} epochs",
            highlight=False,
        )
    elif state.stop_reason == "time limit":
        console.print(f"time limit: {format_seconds(cfg.train.time_limit)} reached after epoch {state.epoch} of "
                      f"{cfg.train.epochs}", highlight=False)  # fmt: skip


def _create_monitor(p: Prepared, logger: MetricLogger) -> Monitor:
    dc = p.built.data_config
    if p.spec.task == "text":
        return Monitor(logger, p.cfg.log, p.model, p.groups, p.spec.classes,
                       train_texts=p.spec.train, val_texts=p.spec.val)  # fmt: skip
    return Monitor(logger, p.cfg.log, p.model, p.groups, p.spec.classes, dc["mean"], dc["std"],
                   p.train_images, p.val_images)  # fmt: skip
