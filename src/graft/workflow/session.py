"""The start of a run, up to its first training step: the run folder claimed and created, the model
probed on the data, the plan and the state to start from, config.yaml and the header, the sinks; and the
`Session` that carries all of it on to training and the run's end (train.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from graft.config import Config, config_to_dict, save_config
from graft.data.discover import DataSpec
from graft.errors import GraftError
from graft.evaluation.calibration import Calibration
from graft.models.module_input import ModelObject
from graft.monitoring.csv_sink import rewrite_csv
from graft.monitoring.logger import MetricLogger, create_logger
from graft.monitoring.monitor import Monitor
from graft.runs.best import resolve_mode
from graft.runs.folder import RunFolder
from graft.runs.lock import RunLock
from graft.runs.store import Checkpoint, CheckpointStore
from graft.training import distributed
from graft.training.checkpoints import RunCheckpoints, restore
from graft.training.guards import check_run_space
from graft.training.prepare import Prepared, Probed, plan_training, probe_on_data
from graft.training.state import TrainState
from graft.workflow.header import print_header
from graft.workflow.run_dir import claim_run_dir, default_run_dir, open_run_dir, write_split


@dataclass
class Session:
    """What the phases of one run hand on to each other, from its plan to its report."""

    run_dir: Path
    p: Prepared
    state: TrainState
    console: Console  # quiet on every rank but 0
    main: bool
    resume: Checkpoint | None  # the checkpoint a resumed run continues from
    started: float  # time.perf_counter() when the run began
    first_bundle_s: float | None  # None: no probe, or not rank 0
    probe_calibration: Calibration | None
    lock: RunLock | None  # rank 0's hold on the run folder (runs/lock.py)
    # set by open_sinks:
    mode: str = field(init=False)
    checkpoints: RunCheckpoints = field(init=False)
    logger: MetricLogger = field(init=False)
    monitor: Monitor = field(init=False)


def claim_run_dir_and_probe(
    cfg: Config, spec: DataSpec, resume: Checkpoint | None, started: float, main: bool, console: Console,
    lock: RunLock | None = None, given: ModelObject | None = None,
) -> tuple[Path, Probed, RunLock | None]:  # fmt: skip
    """The run folder, checked, and the model probed on the data. A new run's folder is created (and
    locked) only after the probe, so a model that cannot be built or fed leaves nothing behind. Rank 0
    holds the run's lock from here to its end: a resume brings the one it took before reading the
    checkpoint, a new run takes it as it creates the folder."""
    run_dir = Path(cfg.out) if resume else distributed.on_main(
        lambda: claim_run_dir(default_run_dir(cfg) if cfg.out is None else Path(cfg.out)))  # fmt: skip
    probed = probe_on_data(cfg, spec, resuming=resume is not None, started=started, given=given)
    if main and resume is None:
        lock = _create_run_dir(run_dir, spec, probed.md.model, cfg.checkpoint.keep_top_k, console)
    elif main and lock is None:
        lock = RunLock(run_dir).acquire()
    return run_dir, probed, lock


def plan_and_restore(
    probed: Probed, run_dir: Path, resume: Checkpoint | None, console: Console, main: bool, started: float,
    first_bundle_s: float | None, probe_calibration: Calibration | None, lock: RunLock | None,
) -> Session:  # fmt: skip
    """The training plan and the state to start from (fresh, or the checkpoint's on resume); the other
    ranks silenced."""
    p = plan_training(probed)
    p.cfg.out = run_dir
    state = restore(p, resume) if resume else TrainState()
    if not main:  # the other ranks train in silence: no console, no log sinks (their cfg is never saved)
        console = Console(quiet=True)
        silent = {"sinks": [], "histogram_every_n_steps": 0, "images": 0, "graph": False}
        p.cfg.log = p.cfg.log.model_copy(update=silent)
    elif resume is not None:  # the checkpoint's history is the truth: drop rows logged after it
        rewrite_csv(RunFolder(run_dir).metrics, state.history)
    return Session(run_dir, p, state, console, main, resume, started, first_bundle_s, probe_calibration, lock)


def save_config_and_header(s: Session) -> None:
    """config.yaml (the settings with every "auto" resolved) and the run's header lines."""
    if s.main:
        save_config(s.p.cfg, RunFolder(s.run_dir).config)
        print_header(s.console, s.p, s.run_dir, s.resume, s.state, s.first_bundle_s)
    distributed.barrier()  # the run folder exists before any rank writes into it


def open_sinks(s: Session) -> None:
    """The checkpoint store, the metric logger and the monitor that feeds it."""
    cfg = s.p.cfg
    s.mode = resolve_mode(cfg.checkpoint.monitor, cfg.checkpoint.mode)
    s.checkpoints = RunCheckpoints(CheckpointStore(RunFolder(s.run_dir).checkpoints), s.p, s.mode)
    # On resume, TensorBoard drops events logged after the checkpoint, so no curve doubles back.
    purge_step = s.state.step + 1 if s.resume else None
    s.logger = create_logger(cfg.log, s.run_dir, purge_step=purge_step, config=config_to_dict(cfg))
    s.monitor = _create_monitor(s.p, s.logger)
    for sink in s.logger.sinks:
        if getattr(sink, "note", None):
            s.console.print(f"[bold]{'log':<6}[/bold] {sink.note}", highlight=False)


def _create_run_dir(
    run_dir: Path, spec: DataSpec, model: torch.nn.Module, keep_top_k: int, console: Console
) -> RunLock:
    check_run_space(run_dir, sum(x.numel() for x in model.parameters()), keep_top_k)
    lock, restarted = open_run_dir(run_dir)
    try:
        if restarted:
            console.print(f"[yellow]note[/yellow] {run_dir}: its run stopped before its first checkpoint, "
                          "so there was nothing to resume; starting it over", highlight=False)  # fmt: skip
        RunFolder(run_dir).checkpoints.mkdir(parents=True, exist_ok=True)
        write_split(spec, RunFolder(run_dir).split)
    except OSError as err:
        lock.release()
        raise GraftError(
            f"cannot create run directory {run_dir}: {err.strerror}; choose another --out"
        ) from None
    except BaseException:
        lock.release()
        raise
    return lock


def _create_monitor(p: Prepared, logger: MetricLogger) -> Monitor:
    dc = p.built.data_config
    if p.spec.modality == "text":
        return Monitor(logger, p.cfg.log, p.model, p.groups, p.spec.classes,
                       train_texts=p.spec.train, val_texts=p.spec.val, task=p.spec.task)  # fmt: skip
    return Monitor(logger, p.cfg.log, p.model, p.groups, p.spec.classes, dc["mean"], dc["std"],
                   p.train_images, p.val_images, task=p.spec.task)  # fmt: skip
