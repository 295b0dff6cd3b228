"""`graft train DATA`: fine-tune a model on labelled images (a folder or CSV) or texts (a table)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from graft.cli.options import (
    BALANCE,
    BATCH_SIZE,
    CONFIG,
    DATA,
    DEDUPE,
    DEVICE,
    IMG_SIZE,
    LABEL_COLUMN,
    LABEL_COLUMNS,
    LABEL_SEPARATOR,
    MODALITY,
    MODE,
    MODEL,
    MONITOR,
    OPT,
    PATH_COLUMN,
    REGRESSION_LOSS,
    SCHED,
    SEED,
    SET,
    SINGLE_LABEL,
    SMOOTHING,
    STARTED,
    STRATEGY,
    STRICT,
    TASK,
    TEXT_COLUMN,
    TEXT_PAIR_COLUMN,
    WARMUP_EPOCHS,
    WEIGHT_DECAY,
    D,
    flag,
    resolve,
    task_flags,
)
from graft.config import parse_set
from graft.data.discover import discover_config
from graft.monitoring.console import format_seconds, make_console
from graft.runs.folder import RunFolder


def train_command(
    data: Path = DATA,
    model: str | None = MODEL,
    strategy: str | None = STRATEGY,
    epochs: int | None = flag(
        "--epochs",
        "-e",
        help=f"Fine-tuning epochs after the solved head (default {D.train.epochs}); 0: the head alone; with "
        "--strategy auto: at most this many, as many as fit in --time-limit.",
    ),
    time_limit: str | None = flag(
        "--time-limit",
        help="Wall-clock budget of the run: 90s, 10m, 1h30m, or none. Default auto: with --strategy auto, "
        "3x the time the frozen features and the solved head took; no limit for a named strategy.",
    ),
    batch_size: int | None = BATCH_SIZE,
    lr: str | None = flag(
        "--lr",
        help=f"Peak learning rate, or auto for the LR range test's suggestion "
        f"(default {D.optim.lr:g}, {D.optim.name} with warmup then {D.optim.scheduler}).",
    ),
    opt: str | None = OPT,
    sched: str | None = SCHED,
    weight_decay: float | None = WEIGHT_DECAY,
    warmup_epochs: float | None = WARMUP_EPOCHS,
    smoothing: float | None = SMOOTHING,
    img_size: int | None = IMG_SIZE,
    task: str | None = TASK,
    single_label: bool = SINGLE_LABEL,
    label_columns: str | None = LABEL_COLUMNS,
    label_separator: str | None = LABEL_SEPARATOR,
    regression_loss: str | None = REGRESSION_LOSS,
    modality: str | None = MODALITY,
    path_column: str | None = PATH_COLUMN,
    label_column: str | None = LABEL_COLUMN,
    text_column: str | None = TEXT_COLUMN,
    text_pair_column: str | None = TEXT_PAIR_COLUMN,
    max_length: int | None = flag(
        "--max-length",
        help="Text: tokens per text; longer ones are truncated (default: enough for 95% of the training "
        "texts, at most 256).",
    ),
    balance: str | None = BALANCE,
    strict: bool | None = STRICT,
    dedupe: bool | None = DEDUPE,
    skip_nonfinite: int | None = flag(
        "--skip-nonfinite", help="Skip up to N batches whose loss is NaN/Inf before stopping (default 0)."
    ),
    val: Path | None = flag("--val", help="Validation folder or CSV (overrides val/ inside DATA)."),
    val_split: float | None = flag(
        "--val-split",
        help=f"Fraction held out for validation when DATA has no val/ (default {D.data.val_split}).",
    ),
    out: Path | None = flag(
        "--out", "-o", help="Run directory, new or empty (default runs/DATA-MODEL-TIME)."
    ),
    config: Path | None = CONFIG,
    set_: list[str] = SET,
    seed: int | None = SEED,
    device: str | None = DEVICE,
    layer_decay: float | None = flag(
        "--layer-decay",
        help=f"discriminative/gradual: LR factor per layer group toward the input (default {D.strategy.layer_decay}).",
    ),
    unfreeze_every: int | None = flag(
        "--unfreeze-every", help=f"gradual: epochs between unfreezes (default {D.strategy.unfreeze_every})."
    ),
    unfreeze_at: str | None = flag(
        "--unfreeze-at", help="gradual: unfreeze the next group after these epochs, e.g. 2,4,6."
    ),
    train_bn: bool | None = flag(
        "--train-bn/--no-train-bn", help="Train all BatchNorm statistics, frozen groups too (default off)."
    ),
    cache_features: str | None = flag(
        "--cache-features",
        help="Head-only epochs on stored backbone features: auto, on or off (default auto).",
    ),
    pretrained: bool | None = flag(
        "--pretrained/--no-pretrained",
        help="Start from pretrained weights, or from random init (default pretrained).",
    ),
    num_workers: int | None = flag(
        "--num-workers", help="DataLoader worker processes (default: CPUs - 1, at most 8)."
    ),
    accum_steps: int | None = flag(
        "--accum-steps", help=f"Accumulate gradients over N batches per step (default {D.train.accum_steps})."
    ),
    amp: str | None = flag(
        "--amp", help="Mixed precision: auto (bf16/fp16 on CUDA, off on CPU), bf16, fp16, off."
    ),
    weights: Path | None = flag(
        "--weights", help="Local .safetensors/.pt state_dict to start from, for --model's architecture."
    ),
    monitor: str | None = MONITOR,
    mode: str | None = MODE,
    keep_top_k: int | None = flag(
        "--keep-top-k", help=f"Best epoch checkpoints kept besides last (default {D.checkpoint.keep_top_k})."
    ),
    save_every: int | None = flag(
        "--save-every", help="Also checkpoint every N optimizer steps (mid-epoch)."
    ),
    save_every_minutes: float | None = flag("--save-every-minutes", help="Also checkpoint every M minutes."),
    patience: int | None = flag(
        "--patience", help="Early stopping: epochs without improvement before stopping."
    ),
    min_delta: float | None = flag(
        "--min-delta", help="Early stopping: the smallest change that counts (default 0)."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="If --out already holds a run, continue it (like `graft resume`) instead of failing.",
    ),
    log: str | None = flag(
        "--log",
        help="Where metrics go: a comma list of tensorboard, csv, wandb; or none (default tensorboard,csv).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain per-epoch lines, no progress bars."),
    devices: int | None = flag(
        "--devices",
        help="Train data-parallel on N processes of this machine (GPUs, else CPU): launches torchrun for you.",
    ),
) -> None:
    """Fine-tune a pretrained model on DATA; writes runs/NAME/ (config, metrics, checkpoints, TensorBoard, bundle).

    Precedence: defaults < --config file < flags < --set.
    """
    if devices is not None and devices > 1 and not _under_torchrun():
        from graft.training.launch import launch

        raise typer.Exit(launch(devices, sys.argv[1:]))
    cfg = resolve(
        config, set_, data=data, model=model, strategy=strategy, epochs=epochs, batch_size=batch_size, lr=lr,
        opt=opt, sched=sched, weight_decay=weight_decay, warmup_epochs=warmup_epochs, smoothing=smoothing,
        path_column=path_column,
        img_size=img_size, val=val, val_split=val_split, out=out, seed=seed, device=device, layer_decay=layer_decay,
        time_limit=time_limit,
        unfreeze_every=unfreeze_every, unfreeze_at=unfreeze_at, train_bn=train_bn, cache_features=cache_features,
        pretrained=pretrained, num_workers=num_workers, accum_steps=accum_steps, amp=amp, weights=weights,
        monitor=monitor, mode=mode, keep_top_k=keep_top_k, save_every=save_every,
        save_every_minutes=save_every_minutes, patience=patience, min_delta=min_delta, quiet=quiet or None,
        log=log, **task_flags(task, single_label, modality), label_columns=label_columns,
        label_separator=label_separator, regression_loss=regression_loss, text_column=text_column,
        label_column=label_column, text_pair_column=text_pair_column, max_length=max_length, balance=balance, strict=strict, dedupe=dedupe, skip_nonfinite=skip_nonfinite,
    )  # fmt: skip
    if resume and cfg.out is not None and RunFolder(Path(cfg.out)).config.is_file():
        from graft.workflow.resume import resume_run

        changeable = dict(epochs=epochs, patience=patience, min_delta=min_delta, device=device, amp=amp,
                          num_workers=num_workers, quiet=quiet or None, log=log)  # fmt: skip
        _finish(resume_run(cfg.out, _given(set_, **changeable), make_console()))
        return
    # Find the data before importing torch (seconds), so a wrong path fails at once.
    spec = discover_config(cfg)
    from graft.workflow.train import run_training

    _finish(run_training(cfg, make_console(), spec))


def resume_command(
    run_dir: Path = typer.Argument(..., help="The run folder to continue (runs/NAME).", show_default=False),
    epochs: int | None = flag(
        "--epochs", "-e", help="Train to this many epochs in all (default: the run's)."
    ),
    patience: int | None = flag("--patience", help="Early stopping patience (default: the run's)."),
    min_delta: float | None = flag("--min-delta", help="Early stopping min_delta (default: the run's)."),
    device: str | None = DEVICE,
    num_workers: int | None = flag("--num-workers", help="DataLoader worker processes (default: the run's)."),
    set_: list[str] = SET,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain per-epoch lines, no progress bars."),
    devices: int | None = flag(
        "--devices", help="Continue data-parallel on N processes of this machine (launches torchrun)."
    ),
) -> None:
    """Continue a run from its newest intact checkpoint (mid-epoch too): the result is the run that never stopped.

    Only epochs, early stopping, device, workers, logging and checkpoint keeping may change.
    """
    if devices is not None and devices > 1 and not _under_torchrun():
        from graft.training.launch import launch

        raise typer.Exit(launch(devices, sys.argv[1:]))
    from graft.workflow.resume import resume_run

    changeable = dict(epochs=epochs, patience=patience, min_delta=min_delta, device=device,
                      num_workers=num_workers, quiet=quiet or None)  # fmt: skip
    _finish(resume_run(run_dir, _given(set_, **changeable), make_console()))


def _under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def _given(set_: list[str], **flags) -> dict:
    return {**{k: v for k, v in flags.items() if v is not None}, **parse_set(set_)}


def _finish(run) -> None:
    if run.stopped in ("SIGINT", "SIGTERM") or os.environ.get("RANK", "0") != "0":
        return  # stopped on request: the resume command is printed; exit 0 (under torchrun: rank 0 speaks)
    what = '"SOME TEXT"' if run.modality == "text" else "IMAGE_OR_FOLDER"
    make_console().print(
        f"done in {format_seconds(time.perf_counter() - STARTED)} (the command, report included); "
        f"next: graft predict {run.path} {what}"
        + (
            f"   |   tensorboard --logdir {RunFolder(run.path).tensorboard}"
            if "tensorboard" in run.config.log.sinks
            else ""
        ),
        highlight=False,
    )
