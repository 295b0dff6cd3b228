"""`graft train DATA`: fine-tune a model on a folder or CSV of labelled images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from graft.config import Config, parse_set, resolve_config
from graft.data.discover import discover
from graft.monitoring.console import make_console

D = Config()  # defaults shown in --help come from the config itself, so they cannot drift


def _flag(*names: str, help: str) -> Any:
    # None means "not given": only flags the user typed override the config file and defaults.
    return typer.Option(None, *names, help=help, show_default=False)


def train_command(
    data: Path = typer.Argument(
        ...,
        help="Folder with one sub-folder per class (optionally train/ and val/ inside), or a CSV with "
        "path,label[,split] columns (paths relative to the CSV).",
        show_default=False,
    ),
    model: str | None = _flag(
        "--model",
        "-m",
        help="timm name (efficientnet_lite0, resnet50.a1_in1k), tv:NAME for torchvision, "
        f"or a bundle/model folder; see `graft models` (default {D.model.name}).",
    ),
    epochs: int | None = _flag("--epochs", "-e", help=f"Epochs to train (default {D.train.epochs})."),
    batch_size: int | None = _flag("--batch-size", "-b", help=f"Batch size (default {D.train.batch_size})."),
    lr: float | None = _flag(
        "--lr",
        help=f"Peak learning rate (default {D.optim.lr:g}, {D.optim.name} with warmup then {D.optim.scheduler}).",
    ),
    img_size: int | None = _flag(
        "--img-size", help="Input size in pixels (default: the model's pretrained size)."
    ),
    val: Path | None = _flag("--val", help="Validation folder or CSV (overrides val/ inside DATA)."),
    val_split: float | None = _flag(
        "--val-split",
        help=f"Fraction held out for validation when DATA has no val/ (default {D.data.val_split}).",
    ),
    out: Path | None = _flag(
        "--out", "-o", help="Run directory, new or empty (default runs/DATA-MODEL-TIME)."
    ),
    config: Path | None = _flag("--config", "-c", help="YAML config file (see `graft config`)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override any config key, e.g. --set optim.weight_decay=0.05 (repeatable).",
        show_default=False,
    ),
    seed: int | None = _flag(
        "--seed", help=f"Random seed for split, init and shuffling (default {D.train.seed})."
    ),
    device: str | None = _flag("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)."),
    pretrained: bool | None = _flag(
        "--pretrained/--no-pretrained",
        help="Start from pretrained weights, or from random init (default pretrained).",
    ),
    num_workers: int | None = _flag(
        "--num-workers", help="DataLoader worker processes (default: CPUs - 1, at most 8)."
    ),
    accum_steps: int | None = _flag(
        "--accum-steps", help=f"Accumulate gradients over N batches per step (default {D.train.accum_steps})."
    ),
    amp: str | None = _flag(
        "--amp", help="Mixed precision: auto (bf16/fp16 on CUDA, off on CPU), bf16, fp16, off."
    ),
    weights: Path | None = _flag(
        "--weights", help="Local .safetensors/.pt state_dict to start from, for --model's architecture."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain per-epoch lines, no live progress bar."),
) -> None:
    """Fine-tune a pretrained model on DATA; writes runs/NAME/ (config, metrics, checkpoints, TensorBoard, bundle).

    Precedence: defaults < --config file < flags < --set.
    """
    flags = dict(
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        img_size=img_size,
        val=val,
        val_split=val_split,
        out=out,
        seed=seed,
        device=device,
        pretrained=pretrained,
        num_workers=num_workers,
        accum_steps=accum_steps,
        amp=amp,
        weights=weights,
        quiet=quiet or None,
    )
    overrides = {"data": data, **{k: v for k, v in flags.items() if v is not None}, **parse_set(set_)}
    cfg = resolve_config(config, overrides)
    # Find the data before importing torch (seconds), so a wrong path fails at once.
    spec = discover(cfg.data.path, cfg.data.val, cfg.data.val_split, cfg.train.seed)
    from graft.training.run import run_training

    console = make_console()
    run = run_training(cfg, console, spec)
    console.print(
        f"next: graft predict {run.path} IMAGE_OR_FOLDER   |   tensorboard --logdir {run.path / 'tb'}",
        highlight=False,
    )
