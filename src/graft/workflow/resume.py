"""`graft resume RUN`: continue a run from its newest intact checkpoint, exactly where it stopped.

What may change on resume: epochs (with care for gradual, see `restore`), early-stopping patience and
min_delta, device and AMP (valid, no longer bitwise), DataLoader workers, the feature-cache folder,
logging, and which checkpoints are kept or how often they are written. Everything that defines the model,
data, split or optimization is fixed by the checkpoint; changing it is an error naming the field.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from graft.config import Config, lookup, resolve_config, valid_keys
from graft.data.discover import DataSpec, discover
from graft.data.text_tables import TextColumns
from graft.errors import GraftError
from graft.models.module_input import ModelObject, resumed_object
from graft.monitoring.console import make_console
from graft.runs.folder import RunFolder
from graft.runs.lock import RunLock
from graft.runs.store import Checkpoint, CheckpointStore
from graft.workflow.train import Run, run_training

CHANGEABLE = (
    "train.epochs",
    "train.patience",
    "train.min_delta",
    "train.device",
    "train.amp",
    "data.num_workers",
    "data.cache_dir",
    "log.",
    "checkpoint.keep_top_k",
    "checkpoint.save_every_steps",
    "checkpoint.save_every_minutes",
    "out",
)


def resume_run(
    run_dir: str | Path, overrides: dict[str, Any] | None = None, console: Console | None = None,
    model: Any = None,
) -> Run:  # fmt: skip
    """`model`: for a run trained from an nn.Module object, an object of that architecture (a custom
    module's run needs one; timm/torchvision/transformers runs are rebuilt from their resolved name)."""
    console = console or make_console()
    run_dir = Path(run_dir)
    if not RunFolder(run_dir).config.is_file():
        raise GraftError(
            f"{run_dir} is not a graft run (no config.yaml); resume takes the folder `graft train` wrote"
        )
    # One writer per run: taken before the checkpoint is read, so a run still training is refused rather
    # than raced (its pruning would delete the checkpoint being read). Under torchrun rank 0 holds it;
    # RANK is read from the environment because the process group is joined later, in run_training.
    rank0 = os.environ.get("RANK", "0") == "0" or int(os.environ.get("WORLD_SIZE", "1")) <= 1
    lock = RunLock(run_dir).acquire() if rank0 else None
    try:
        damaged: list[str] = []
        checkpoint = CheckpointStore(RunFolder(run_dir).checkpoints).latest_good(damaged)
        for problem in damaged:
            console.print(f"[yellow]warning[/yellow] {problem}", highlight=False)
        if checkpoint is None:
            raise GraftError(
                f"{run_dir} has no intact checkpoint to resume from"
                + (f" ({len(damaged)} damaged)" if damaged else " (it stopped before its first checkpoint)")
                + (
                    f"; start it over: graft train DATA --out {run_dir}"
                    if not damaged
                    else "; start a new run"
                )
            )
        cfg, spec = _resumable(run_dir, checkpoint, overrides)
        given = _given_object(model, cfg, checkpoint, run_dir)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return run_training(cfg, console, spec, resume=checkpoint, lock=lock, given=given)


def _given_object(model: Any, cfg: Config, checkpoint: Checkpoint, run_dir: Path) -> ModelObject | None:
    """The object to rebuild the model from, checked against the checkpoint before anything heavy runs."""
    if cfg.model.module is None:
        if model is not None:
            raise GraftError(
                f"model=: {run_dir} trained {cfg.model.name}, not an object; resume it without model="
            )
        return None
    return resumed_object(model, cfg.model.name, cfg.model.module, checkpoint.model, str(run_dir))


def _resumable(
    run_dir: Path, checkpoint: Checkpoint, overrides: dict[str, Any] | None
) -> tuple[Config, DataSpec]:
    """The checkpoint's config with the changes resume allows, and the exact split it trained on."""
    saved = Config.model_validate(checkpoint.state["config"])
    cfg = resolve_config(overrides=overrides or {}, base=saved)
    for key in valid_keys():
        if lookup(cfg, key) != lookup(saved, key) and not key.startswith(CHANGEABLE):
            raise GraftError(
                f"cannot resume {run_dir} with {key}={lookup(cfg, key)!r}: it was trained with {lookup(saved, key)!r}; "
                "on resume only epochs, patience, min_delta, device, amp, num_workers, logging and checkpoint "
                "keeping may change (start a new run for anything else)"
            )
    cfg.out = run_dir
    # The exact split this run trained on. split.csv is a valid graft input CSV by design (runs/split.py):
    # discover reads it as `graft train` read the data, with the same checks and the same samples.
    # Its task as written when it began (runs from before tasks existed were all single-label).
    task = cfg.data.task if cfg.data.task != "auto" else "single-label"
    spec = discover(RunFolder(run_dir).split, task=task, columns=TextColumns(separator=cfg.data.label_separator),
                    regression_loss=cfg.train.regression_loss)  # fmt: skip
    if spec.task.name == "regression":  # split.csv's column is always 'label'; the target keeps its name
        name = checkpoint.state["classes"][0]
        spec = replace(spec, classes=[name], task=replace(spec.task, target_name=name))
    if spec.classes != checkpoint.state["classes"]:
        raise GraftError(
            f"{RunFolder(run_dir).split} now gives classes {spec.classes}, the checkpoint has {checkpoint.state['classes']}"
        )
    return cfg, spec
