"""Flags shared by the commands that build a model on data (train, advise, lr-find, summary).

Each flag defaults to None, meaning "not given": only what the user typed overrides the config file and
the defaults. Defaults in the help text come from the config itself, so they cannot drift.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from graft.config import Config, parse_set, resolve_config

# When the command began (this module loads with the CLI): the last line counts imports and the report too.
STARTED = time.perf_counter()

D = Config()


def flag(*names: str, help: str) -> Any:
    return typer.Option(None, *names, help=help, show_default=False)


DATA = typer.Argument(
    ...,
    help="Folder with one sub-folder per class (optionally train/ and val/ inside), or a CSV with "
    "path,label[,split] columns (paths relative to the CSV).",
    show_default=False,
)
MODEL = flag(
    "--model",
    "-m",
    help="timm name (efficientnet_lite0, resnet50.a1_in1k), tv:NAME for torchvision, "
    f"or a bundle/model folder; see `graft models` (default {D.model.name}).",
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
    help="Class imbalance: sampler (draw classes equally often), loss (class-weighted cross-entropy), "
    "none, or auto (default: chosen from the measured imbalance, see `graft check`).",
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


SINGLE_LABEL = typer.Option(
    False,
    "--single-label",
    help="Classify every distinct label as given, even labels that look multi-label (a;b) or numeric "
    "(a quantity), which are refused otherwise.",
)
