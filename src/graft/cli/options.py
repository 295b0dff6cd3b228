"""Flags shared by the commands that build a model on data (train, advise, lr-find, summary, check).

Each flag defaults to None, meaning "not given": only what the user typed overrides the config file and
the defaults. Defaults in the help text come from the config itself, so they cannot drift. Flags that
timm's train.py also has are named as it names them (--opt, --sched, --weight-decay, --warmup-epochs,
--smoothing); the config keys they set are in `graft.config.ALIASES`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, get_args

import typer

from graft.config import DEFAULT_MODELS, SCHEDULES, Config, parse_set, resolve_config
from graft.config.schema import CheckpointConfig
from graft.config.task_names import ALIASES as TASK_ALIASES
from graft.config.task_names import TASK_NAMES, task_name
from graft.errors import GraftError
from graft.monitoring.console import make_console

# When the command began (this module loads with the CLI): the last line counts imports and the report too.
STARTED = time.perf_counter()

D = Config()


def flag(*names: str, help: str) -> Any:
    return typer.Option(None, *names, help=help, show_default=False)


DATA = typer.Argument(
    ...,
    help="Images: a folder with one sub-folder per class (optionally train/ and val/ inside), or a CSV with "
    "path,label[,split] columns (paths relative to the CSV; see --path-column, --label-column). Texts: a "
    "CSV/TSV/JSONL table with text,label[,split] columns, or a folder with train and val tables.",
    show_default=False,
)
MODEL = flag(
    "--model",
    "-m",
    help="timm name (efficientnet_lite0, resnet50.a1_in1k), tv:NAME for torchvision, a Hugging Face text "
    "encoder (hub name or folder), or a bundle/model folder; see `graft models` "
    f"(default {DEFAULT_MODELS['image']} for images, {DEFAULT_MODELS['text']} for texts).",
)
STRATEGY = flag(
    "--strategy",
    "-s",
    help="auto, linear-probe, full, discriminative or gradual (default auto: measured by `graft advise`).",
)
IMG_SIZE = flag("--img-size", help="Input size in pixels (default: the model's pretrained size).")
BATCH_SIZE = flag("--batch-size", "-b", help=f"Batch size (default {D.train.batch_size}).")
CONFIG = flag("--config", "-c", help="YAML config file (see `graft config`).")
SET = typer.Option(
    [],
    "--set",
    help="Override any config key, e.g. --set optim.weight_decay=0.05 (repeatable).",
    show_default=False,
)
SEED = flag("--seed", help=f"Random seed for split, init and shuffling (default {D.train.seed}).")
DEVICE = flag("--device", help="auto, cpu, cuda, cuda:N or mps (default auto).")
BALANCE = flag(
    "--balance",
    help="Class imbalance: sampler (draw classes equally often), loss (class-weighted cross-entropy; "
    "multi-label: each label's positives weighted), none, or auto (default: chosen from the measured "
    "imbalance, see `graft check`; none for multi-label and regression).",
)
TEXT_COLUMN = flag(
    "--text-column", help=f"Text table: the column with the text (default {D.data.text_column})."
)
LABEL_COLUMN = flag(
    "--label-column",
    help=f"Image CSV or text table: the column with the labels (default {D.data.label_column}).",
)
PATH_COLUMN = flag(
    "--path-column",
    help=f"Image CSV: the column with the image paths (default {D.data.path_column}).",
)
TEXT_PAIR_COLUMN = flag(
    "--text-pair-column", help="Text table: a second text column, for sentence-pair tasks."
)
# Optimizer and schedule, named as timm's train.py names them.
OPT = flag(
    "--opt",
    help="Optimizer: any timm name, e.g. adamw, sgd (plain momentum; nesterov for Nesterov), lamb, lion, "
    f"also lookahead_NAME; a wrong name lists them all (default {D.optim.name}).",
)
SCHED = flag(
    "--sched",
    help=f"LR schedule after the linear warmup: {' or '.join(SCHEDULES)} (cosine ends at "
    f"{D.optim.min_lr_ratio:g} x the LR; default {D.optim.scheduler}).",
)
WEIGHT_DECAY = flag(
    "--weight-decay",
    help=f"Weight decay, not applied to biases and norm layers (default {D.optim.weight_decay:g}).",
)
WARMUP_EPOCHS = flag(
    "--warmup-epochs",
    help=f"Linear LR warmup from 0, in epochs, fractions too (default {D.optim.warmup_epochs:g}).",
)
SMOOTHING = flag(
    "--smoothing", help=f"Label smoothing of the training loss (default {D.optim.label_smoothing:g})."
)
STRICT = flag("--strict/--no-strict", help="Unreadable files are an error instead of skipped (default off).")
DEDUPE = flag(
    "--dedupe/--no-dedupe",
    help="Drop validation samples that duplicate training samples, exactly or nearly (default off).",
)


def resolve(config: Path | None, set_: list[str], **flags: Any) -> Config:
    """Config from the file, then the flags the user gave (None = not given), then --set."""
    given = {key: value for key, value in flags.items() if value is not None}
    return resolve_config(config, {**given, **parse_set(set_)})


# What is predicted (graft/tasks/) and how the labels say it; --modality is what the samples are.
MODALITY = flag("--modality", help="What the samples are: image or text (default: detected from DATA).")
TASK = flag(
    "--task",
    help="What is predicted: single-label (one class per sample), multi-label (any set of labels: "
    "';'-joined cells, or 0/1 columns with --label-columns), regression (a number), or auto (default: "
    "read from the labels; `graft check` says why).",
)
SINGLE_LABEL = typer.Option(
    False,
    "--single-label",
    help="Short for --task single-label: every distinct label is a class as given, also 'a;b' or numbers.",
)
LABEL_COLUMNS = flag(
    "--label-columns",
    help="Multi-label from one 0/1 column per label: their names or globs, comma-separated, e.g. "
    "'emo_*' (implies --task multi-label).",
)
LABEL_SEPARATOR = flag(
    "--label-separator",
    help=f"Multi-label: what joins the labels of a cell (default '{D.data.label_separator}').",
)
REGRESSION_LOSS = flag(
    "--regression-loss",
    help=f"Regression: mse or huber (on the standardised target; default {D.train.regression_loss}).",
)
MONITOR_NAMES = [m for m in get_args(CheckpointConfig.model_fields["monitor"].annotation) if m != "auto"]
MONITOR = flag(
    "--monitor",
    help="What 'best' means: auto, the task's metric (val_acc single-label, val_map multi-label, val_mae "
    f"regression), or one of {', '.join(MONITOR_NAMES)} (default auto).",
)
MODE = flag(
    "--mode", help="max or min for --monitor (default: min for a loss or an error, max for the rest)."
)
MODALITIES = ("image", "text")


def task_flags(task: str | None, single_label: bool = False, modality: str | None = None) -> dict[str, Any]:
    """--task, --single-label and --modality as config values (None: not given); a wrong name is an error
    listing the choices. `--task image|text`, its meaning before tasks existed, still sets the modality."""
    if modality is not None and modality.strip().lower() not in MODALITIES:
        raise GraftError(f"--modality {modality!r}: choose image or text (default: detected from DATA)")
    if task is not None and task.strip().lower() in MODALITIES:
        if modality is not None:
            raise GraftError(f"--task {task} is the old spelling of --modality {task}; give one of them")
        make_console(stderr=True).print(
            f"[yellow]warning[/yellow] --task {task} is now --modality {task} (--task is what is predicted: "
            f"{', '.join(TASK_NAMES)})",
            highlight=False,
        )
        task, modality = None, task.strip().lower()
    if task is not None and task.strip().lower() != "auto":
        try:
            task = task_name(task)
        except ValueError:
            spellings = ", ".join(sorted(set(TASK_ALIASES) - set(TASK_NAMES)))
            raise GraftError(f"--task {task!r} is not a task; choose auto, {', '.join(TASK_NAMES)} "
                             f"(also accepted: {spellings})") from None  # fmt: skip
    if single_label:
        if task not in (None, "single-label"):
            raise GraftError(f"--single-label is short for --task single-label; it contradicts --task {task}")
        task = "single-label"
    return {"task": task, "modality": modality.strip().lower() if modality else None}
