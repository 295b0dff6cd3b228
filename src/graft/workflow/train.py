"""A whole run, from a resolved Config to a run directory with checkpoints, metrics and a bundle.

Everything that can fail on user input (data, model name and input size, output folder) is checked
before the first byte is written, so a mistake never leaves a half-made run directory behind; and a
run folder that already holds anything is never written into.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from graft.config import Config
from graft.data.check import check_for_training
from graft.data.discover import DataSpec, discover_config
from graft.errors import GraftError, WriteFailed
from graft.evaluation.calibration import Calibration
from graft.evaluation.evaluate import report_after_training
from graft.models.module_input import ModelObject
from graft.models.registry import check_model_name, pretrained_input_size
from graft.monitoring.console import Progress, format_seconds, make_console, plural
from graft.monitoring.monitor import Monitor
from graft.progress import progress_to
from graft.runs.folder import RunFolder
from graft.runs.lock import RunLock
from graft.runs.status import error_line, mark_ended, mark_running, read_status
from graft.runs.store import Checkpoint, CheckpointStore, write_error_reason
from graft.runtime import resolve_device
from graft.tasks import format_metric
from graft.tasks.base import PERCENT_METRICS
from graft.training import distributed
from graft.training.checkpoints import RunCheckpoints
from graft.training.guards import explain_failure, is_write_failure, write_failure_error
from graft.training.loop import StepConfig, fit
from graft.training.optim import check_optimizer_name
from graft.training.prepare import Prepared, Probed
from graft.training.signals import GracefulStop
from graft.training.state import TrainState
from graft.workflow.bundle import describe_bundle, load_best, val_logits, write_run_bundle
from graft.workflow.header import example_input, hparams, record_outcome, results, strategy_text
from graft.workflow.session import (
    Session,
    claim_run_dir_and_probe,
    open_sinks,
    plan_and_restore,
    save_config_and_header,
)


@dataclass
class Run:
    """The result of `graft.train` and `graft.resume`: where it is and how it went (`metrics`, `history`)."""

    path: Path
    config: Config
    classes: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    stopped: str | None = None  # why it ended before its last epoch: "SIGTERM", "SIGINT", "early stopping"
    checkpoint_seconds: float = 0.0  # time this process spent writing checkpoints
    checkpoints_written: int = 0
    modality: str = "image"  # or "text"
    task: str = "single-label"  # or "multi-label", "regression" (graft/tasks/)
    first_bundle_seconds: float | None = None  # from the start of the run to the probe's bundle
    seconds: float | None = None  # the whole run, report included

    @property
    def bundle(self) -> Path:
        return RunFolder(self.path).bundle

    @property
    def metrics(self) -> dict[str, float]:
        """How the run did, as numbers: the evaluation report's (runs/NAME/report/metrics.json: accuracy,
        top_k_accuracy, macro_f1, weighted_f1, ece, loss, num_samples, ...) when the run has one, else the
        best epoch's history row (val_acc, val_loss, train_loss, epoch, ...); {} before a finished epoch.
        A report older than the bundle (a resumed run stopped before writing its own) is not this bundle's
        and is passed over. Per-class numbers and the confusion matrix: `graft.evaluate(run)`."""
        import json  # here, not at the top: this module's imports belong to run_training

        folder = RunFolder(self.path)
        report = folder.report / "metrics.json"
        try:
            current = report.is_file() and (
                not folder.bundle_meta.is_file()
                or report.stat().st_mtime >= folder.bundle_meta.stat().st_mtime
            )
            if current:
                numbers = json.loads(report.read_text())
                return {
                    k: v
                    for k, v in numbers.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
        except (OSError, ValueError) as err:
            raise GraftError(f"cannot read {report}: {err}") from None
        rows = [row for row in self.history if row.get("epoch") == self.best_epoch]
        return dict(rows[-1]) if rows else {}

    def __repr__(self) -> str:  # one line, not the whole config
        monitor = self.config.checkpoint.monitor
        if self.best_metric is None or self.best_epoch is None:
            outcome = "no finished epoch"
        else:
            value = (
                f"{self.best_metric:.1%}"
                if monitor in PERCENT_METRICS
                else format_metric(monitor, self.best_metric)
            )
            outcome = f"best {monitor} {value} at epoch {self.best_epoch}/{self.config.train.epochs}"
        stopped = f", stopped: {self.stopped}" if self.stopped else ""
        what = {"multi-label": plural(len(self.classes), "label"), "regression": "regression"}.get(
            self.task, plural(len(self.classes), "class"))  # fmt: skip
        return f"Run({str(self.path)!r}, {outcome}, {what}{stopped})"

    def load(self, device: str = "auto", model=None):  # -> Predictor (lazily: predict needs no training code)
        """`model`: for a run trained from a custom nn.Module, an object of that architecture."""
        from graft.predict.images import Predictor

        return Predictor.from_path(self.bundle, device=device, model=model)


def run_training(
    cfg: Config,
    console: Console | None = None,
    spec: DataSpec | None = None,
    resume: Checkpoint | None = None,
    lock: RunLock | None = None,
    given: ModelObject | None = None,
) -> Run:
    """Train per `cfg`, or continue the run that `resume` (a verified checkpoint of `cfg.out`) belongs to.
    `spec` is the already-discovered data, when the caller checked it first; `lock`, the run folder's lock
    when the caller took it before reading the checkpoint (resume_run). Released when the run ends.
    `given`: the nn.Module object `cfg.model` was resolved from (models/module_input.py)."""
    started = time.perf_counter()
    distributed.init(cfg.train.device)  # under torchrun: join the other ranks (a no-op otherwise)
    console = console or make_console()
    # Every step's progress (the data check, the frozen pass, the solved head, auto's timing, the report)
    # on the run's console, between its lines; none on the other ranks, none with --quiet.
    with progress_to(console if distributed.is_main() else Console(quiet=True), cfg.log.quiet):
        return _run_training(cfg, console, spec, resume, lock, started, given)


def _run_training(
    cfg: Config, console: Console, spec: DataSpec | None, resume: Checkpoint | None, lock: RunLock | None,
    started: float, given: ModelObject | None,
) -> Run:  # fmt: skip
    main = distributed.is_main()  # only rank 0 writes files and prints
    spec = spec or discover_config(cfg)
    if resume is None:  # a resumed run trains on its split.csv, checked when the run began
        _check_cheap_things_first(cfg, spec, console if main else Console(quiet=True))
        spec = check_for_training(cfg, spec, console if main else Console(quiet=True))
    run_dir = Path(cfg.out) if cfg.out is not None else None
    try:  # the lock is released however the run ends (the OS releases it if the process dies)
        run_dir, probed, lock = claim_run_dir_and_probe(
            cfg, spec, resume, started, main, console, lock, given
        )
        first_bundle_s, probe_calibration = _write_first_bundle(run_dir, probed, started, main)
        s = plan_and_restore(probed, run_dir, resume, console, main, started, first_bundle_s, probe_calibration,
                             lock)  # fmt: skip
        save_config_and_header(s)
        mark_running(run_dir, s.p.cfg.train.epochs)  # `graft runs` tells running from crashed by this pid
        open_sinks(s)
        requested = _train(s)  # the signal's name when SIGINT/SIGTERM asked for a stop, else None
        stopped = requested or s.state.stop_reason
        ending = ("stopped" if requested else "finished", stopped)
        _say_why_stopped(s, requested)
        run = Run(run_dir, s.p.cfg, spec.classes, s.state.history, s.state.best_metric, s.state.best_epoch, stopped,
                  s.checkpoints.seconds, len(s.checkpoints.saved), spec.modality, spec.task.name,
                  first_bundle_s)  # fmt: skip
        if s.state.best_checkpoint is None:
            mark_ended(run_dir, *ending)
            return run
        # Every rank takes part: the validation logits of the best model are a collective under torchrun,
        # once rank 0's last checkpoint write is complete.
        distributed.barrier()
        checkpoint, record, fallback = load_best(run_dir, s.p, s.console)
        logits, targets = val_logits(s.p, record["epoch"])
        if not main:  # rank 0 bundles and reports
            return run
        bundled, calibrated = _bundle_best(s, checkpoint, record, logits, targets)
        mark_ended(run_dir, *ending)  # after the bundle: a "finished" run has its model/
        _report(s, checkpoint, record, calibrated, bundled, requested, fallback)
        run.seconds = time.perf_counter() - started
        return run
    except OSError as err:  # a write outside the loop (config, header, bundle, report)
        raise _outside_the_loop(err, run_dir, lock) from None
    finally:
        if lock is not None:
            lock.release()


def _check_cheap_things_first(cfg: Config, spec: DataSpec, console: Console) -> None:
    """A model-name or optimizer typo, or a GPU that is not there, fails in a second, before the data check reads every
    file; an input far smaller than the pretrained weights saw is said before the frozen pass, not after."""
    resolve_device(cfg.train.device)
    check_optimizer_name(cfg.optim.name)
    if spec.modality == "text" or cfg.model.name is None or cfg.model.module is not None:
        return  # an object was resolved to its name, or is a custom module that has none
    check_model_name(cfg.model.name)
    seen = pretrained_input_size(cfg.model.name) if cfg.model.pretrained else None
    if (
        seen and cfg.data.img_size and cfg.data.img_size < seen / 4
    ):  # the demo's 64 px on 224 px weights is fine
        console.print(f"[yellow]warning[/yellow] --img-size {cfg.data.img_size} is far below the {seen} px the pretrained "
                      f"weights were trained at: their deep features carry little at that size; use --img-size "
                      f"{seen // 4} or more", highlight=False)  # fmt: skip


def _outside_the_loop(err: OSError, run_dir: Path | None, lock: RunLock | None) -> Exception:
    """What to raise for an OSError outside the training loop: a write failure in a folder this process
    owns is one line and leaves the run stopped (resumable); after the run finished (only its report or
    outcome could not be written), it says so; anything else is raised as it is."""
    if lock is None or not is_write_failure(err, run_dir):
        return err
    if read_status(run_dir).get("state") == "finished":
        return WriteFailed(f"the run finished and its bundle is written, but {err.filename or 'a file'} could not be "
                           f"written: {write_error_reason(err)}; `graft eval {run_dir}` writes the report again")  # fmt: skip
    failure = write_failure_error(
        err, run_dir, CheckpointStore(RunFolder(run_dir).checkpoints).read_index().last
    )
    mark_ended(run_dir, "stopped", error_line(failure))
    return failure


def _write_first_bundle(
    run_dir: Path, probed: Probed, started: float, main: bool
) -> tuple[float | None, Calibration | None]:
    """The probe's bundle, calibrated: the first usable model, minutes before fine-tuning ends.
    Returns the seconds from the start of the run to it and its calibration; (None, None) if none."""
    if probed.probe is None or not main:
        return None, None
    calibration = write_run_bundle(run_dir, probed, probed.probe.record, PROBE_CHECKPOINT,
                                   probed.probe.outputs.logits, probed.probe.outputs.targets)  # fmt: skip
    return time.perf_counter() - started, calibration


def _train(s: Session) -> str | None:
    """The probe as epoch 0 (a new run), then fine-tuning; SIGINT/SIGTERM ask for a stop at the next
    checkpoint. A failure is written to status.json before it propagates. Returns the stop signal's name."""
    p, cfg, run_dir = s.p, s.p.cfg, s.run_dir
    with GracefulStop() as stop:
        try:
            if s.resume is None and s.main:
                s.monitor.start(RunFolder(run_dir).config.read_text(), strategy_text(p), example_input(p))
                for note in s.monitor.notes:
                    s.console.print(f"[yellow]note[/yellow] {note}", highlight=False)
            if s.resume is None and p.probe is not None:
                _record_probe(p, s.state, s.monitor, s.checkpoints, s.mode)
            s.state = fit(p.model, inputs_for=p.inputs_for, staging=p.staging, optimizer=p.optimizer,
                          schedule=p.schedule, scaler=p.scaler, state=s.state, epochs=cfg.train.epochs,
                          step_cfg=_step_config(p), metric=cfg.checkpoint.monitor,
                          mode=s.mode, patience=cfg.train.patience, min_delta=cfg.train.min_delta,
                          monitor=s.monitor, progress=Progress(s.console, cfg.log.quiet),
                          checkpoints=s.checkpoints, stop=stop, deadline=p.deadline)  # fmt: skip
            if s.state.history and not stop.requested:  # finished (or stopped early): results vs settings
                s.monitor.finish(hparams(cfg), results(s.state))
        except KeyboardInterrupt:  # a second Ctrl-C: stop now; still bundle what finished epochs produced
            mark_ended(run_dir, "stopped", "a second Ctrl-C")  # resumable from its last checkpoint, if any
            s.checkpoints.close()
            if s.main and s.checkpoints.store.read_index().best:
                checkpoint, record, fallback = load_best(run_dir, p, s.console)
                write_run_bundle(run_dir, p, record, checkpoint.name)  # no time for calibration
                what = fallback or f"the best finished epoch ({describe_bundle(p, record, s.state.history)})"
                s.console.print(f"interrupted: bundle {RunFolder(run_dir).bundle} built from {what}, not calibrated",
                                highlight=False)  # fmt: skip
            raise
        except Exception as err:
            if is_write_failure(err, run_dir):  # a full disk, a folder gone read-only: stopped, resumable
                err = write_failure_error(err, run_dir, s.checkpoints.store.read_index().last)
            mark_ended(run_dir, "stopped" if isinstance(err, WriteFailed) else "failed", error_line(err))
            # Out of GPU memory, a DataLoader worker killed: one line saying what to change.
            explained = err if isinstance(err, GraftError) else explain_failure(
                err, cfg.train.batch_size, cfg.train.accum_steps, p.device, (p.train_images, p.val_images))  # fmt: skip
            if explained is None:
                raise
            raise explained from None
        finally:
            in_flight = sys.exc_info()[1]  # when something already failed, that error is the one to report
            flush_failure = None
            try:
                s.logger.close()  # the sinks' last flush
            except OSError as err:
                flush_failure = err
            try:
                s.checkpoints.close()  # the write in flight completes (or raises its error) before anything else
            except Exception as err:
                mark_ended(run_dir, "stopped" if isinstance(err, WriteFailed) else "failed", error_line(err))
                raise
            if flush_failure is not None and in_flight is None:
                failure = write_failure_error(flush_failure, run_dir, s.checkpoints.store.read_index().last)
                mark_ended(run_dir, "stopped", error_line(failure))
                raise failure from None
    return stop.requested


def _bundle_best(
    s: Session, checkpoint: Checkpoint, record: dict[str, float], logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, str]:
    """runs/NAME/model/ from the best checkpoint, calibrated on its validation logits. Returns the logits
    the bundle outputs and, when it was (re)written, its calibration's words for the last line."""
    rewrite = not (record["epoch"] == 0 and s.first_bundle_s is not None)  # else: already bundled, calibrated
    calibration = (
        write_run_bundle(s.run_dir, s.p, record, checkpoint.name, logits, targets)
        if rewrite
        else s.probe_calibration
    )
    calibrated = f", {calibration.summary()}" if calibration is not None and rewrite else ""
    task = s.p.spec.task
    if task.name == "regression":  # the bundle's head has the target's scaling folded in
        return task.raw(logits).float().reshape(-1, 1), calibrated
    if task.name == "multi-label":
        calibrated = ", thresholds tuned per label on validation" if rewrite else ""
    return logits / (calibration.temperature if calibration is not None else 1.0), calibrated


def _report(
    s: Session, checkpoint: Checkpoint, record: dict[str, float], calibrated: str, bundled: torch.Tensor,
    requested: str | None, fallback: str | None,
) -> None:  # fmt: skip
    """The run's last line (what the bundle holds, where the time went) and its evaluation report."""
    elapsed = time.perf_counter() - s.started
    outcome = fallback or describe_bundle(s.p, record, s.state.history)
    record_outcome(s.run_dir, int(record["epoch"]), outcome)
    seconds = s.checkpoints.seconds
    s.console.print(
        f"{'' if fallback else 'best '}{outcome}; bundle {RunFolder(s.run_dir).bundle} from {checkpoint.name}"
        f"{calibrated} ({format_seconds(elapsed)} since the run started; {plural(len(s.checkpoints.saved), 'checkpoint')} written in "
        f"{seconds:.1f}s, {seconds / max(elapsed, 1e-9):.1%})",
        highlight=False,
    )
    if not requested:  # a stop request wants the process gone soon; `graft eval RUN` writes it later
        # A custom module's bundle loads into a module of its architecture: the trained one is at hand.
        template = distributed.unwrap(s.p.model) if s.p.built.family == "module" else None
        report_after_training(s.run_dir, s.console, str(s.p.device), s.p.cfg.data.num_workers, bundled,
                              model=template)  # fmt: skip


PROBE_CHECKPOINT = "step-000000"  # the probe is checkpointed at step 0, right after its bundle is written


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
                      class_weights=p.class_weights, task=p.spec.task)  # fmt: skip


def _say_why_stopped(s: Session, requested: str | None) -> None:
    console, cfg, state, saved = s.console, s.p.cfg, s.state, s.checkpoints.saved
    if requested:
        console.print(
            f"stopped by {requested} at step {state.step} (epoch {state.epoch + 1}, batch {state.batch_in_epoch}); "
            f"checkpoint {saved[-1] if saved else 'none'} written. Resume with: graft resume {s.run_dir}",
            highlight=False,
        )
    elif state.stop_reason == "early stopping":
        console.print(
            f"early stopping: {cfg.checkpoint.monitor} did not improve by more than {cfg.train.min_delta:g} "
            f"for {plural(state.bad_epochs, 'epoch')}",
            highlight=False,
        )
    elif state.stop_reason == "time limit":
        console.print(f"time limit: {format_seconds(cfg.train.time_limit)} reached after epoch {state.epoch} of "
                      f"{cfg.train.epochs}", highlight=False)  # fmt: skip
