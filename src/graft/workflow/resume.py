"""`graft resume RUN`: continue a run from its newest intact checkpoint, exactly where it stopped.

What may change on resume: epochs (with care for gradual, see `restore`), early-stopping patience and
min_delta, device and AMP (valid, no longer bitwise), DataLoader workers, the feature-cache folder,
logging, and which checkpoints are kept or how often they are written. Everything that defines the model,
data, split or optimization is fixed by the checkpoint; changing it is an error naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from graft.config import Config, lookup, resolve_config, valid_keys
from graft.data.discover import discover
from graft.errors import GraftError
from graft.monitoring.console import make_console
from graft.runs.folder import RunFolder
from graft.runs.store import CheckpointStore
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
    run_dir: str | Path, overrides: dict[str, Any] | None = None, console: Console | None = None
) -> Run:
    console = console or make_console()
    run_dir = Path(run_dir)
    if not RunFolder(run_dir).config.is_file():
        raise GraftError(
            f"{run_dir} is not a graft run (no config.yaml); resume takes the folder `graft train` wrote"
        )
    damaged: list[str] = []
    checkpoint = CheckpointStore(RunFolder(run_dir).checkpoints).latest_good(damaged)
    for problem in damaged:
        console.print(f"[yellow]warning[/yellow] {problem}", highlight=False)
    if checkpoint is None:
        raise GraftError(
            f"{run_dir} has no intact checkpoint to resume from"
            + (f" ({len(damaged)} damaged)" if damaged else " (it stopped before its first checkpoint)")
            + "; start it again with graft train"
        )
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
    spec = discover(RunFolder(run_dir).split)
    if spec.classes != checkpoint.state["classes"]:
        raise GraftError(
            f"{RunFolder(run_dir).split} now gives classes {spec.classes}, the checkpoint has {checkpoint.state['classes']}"
        )
    return run_training(cfg, console, spec, resume=checkpoint)
