"""What a run says about itself: the console header, the strategy text and hparams for the logs,
advice.json (what the probe scored, what auto measured and chose, and which of the two was bundled) and
stages.json (the stages as planned, for the report); both files' formats are runs/records.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from graft.config import Config, lookup
from graft.config.task_names import format_metrics
from graft.data.discover import DataSpec
from graft.monitoring.console import format_seconds, plural
from graft.runs.folder import RunFolder
from graft.runs.records import RecordedStages, add_to_advice, stage_line, write_advice, write_stages
from graft.runs.store import Checkpoint
from graft.strategies.stages import describe
from graft.tasks.base import SHOWN_METRICS
from graft.training import distributed
from graft.training.prepare import Prepared
from graft.training.state import TrainState


def example_input(p: Prepared) -> torch.Tensor | None:
    """What add_graph traces with; None for text models (transformers' dict inputs do not trace cleanly)."""
    if p.spec.modality == "text":
        return None
    return torch.zeros(1, *p.built.data_config["input_size"], device=p.device)


def decision(p: Prepared) -> dict[str, Any] | None:
    """How the strategy was chosen, with its inputs: the probe's scores, auto's measured options and plan
    (or, without the probe, the advisor's measurements)."""
    if p.advice is not None:
        return p.advice.to_dict()
    if p.probe is None and p.plan is None:
        return None
    out: dict[str, Any] = {"strategy": p.cfg.strategy.name}
    if p.probe is not None:
        probe = p.probe.probe
        out["probe"] = {
            **{k: v for k, v in p.probe.record.items() if k.startswith("val_")},
            "train_loss": probe.train_loss, "l2_c": probe.l2_c, "cross_validation": probe.cv,
            "seconds": probe.seconds, "knn_separability": p.probe.knn_separability,
        }  # fmt: skip
    if p.plan is not None:
        out["plan"] = p.plan.to_dict()
        out["reason"] = p.plan.reason
        out["time_limit_s"] = p.cfg.train.time_limit
    return out


def strategy_text(p: Prepared) -> str:
    """The strategy explanation for the logs (TensorBoard text, W&B summary): what was chosen, why, and
    what was measured."""
    text = f"**{p.cfg.strategy.name}**: {describe(p.cfg.strategy.name, p.stages, p.groups)}"
    measured = decision(p)
    if measured is not None:
        reason = measured.get("reason") or getattr(p.advice, "reason", "")
        text += f"\n\nchosen by --strategy auto: {reason}" if p.plan or p.advice else ""
        text += "\n\n" + "\n".join(
            "    " + line for line in json.dumps(measured, indent=2, default=str).splitlines()
        )
    return text


def record_outcome(run_dir: Path, bundled_epoch: int, line: str) -> None:
    """Add to advice.json which epoch the bundle holds and why (the solved head, or a fine-tune that beat it),
    so the report shows the end of the decision beside its inputs."""
    add_to_advice(run_dir, bundled_epoch=bundled_epoch, outcome=line)


def planned_stages(p: Prepared) -> RecordedStages:
    """The stages as training planned them, in the words the report shows (stages.json)."""
    lines = [
        stage_line(s.start_epoch, [(p.groups[g].name, scale) for g, scale in zip(s.trainable, s.lr_scales)])
        for s in p.stages
    ]
    return RecordedStages(p.cfg.strategy.name, describe(p.cfg.strategy.name, p.stages, p.groups), lines)


# The settings that differ between runs people compare; TensorBoard's HPARAMS tab gets one column each.
HPARAMS = ("model.name", "strategy.name", "strategy.layer_decay", "strategy.train_groups", "optim.name", "optim.lr",
           "optim.weight_decay", "optim.label_smoothing", "train.epochs", "train.batch_size", "data.img_size",
           "data.augment.enabled", "train.seed")  # fmt: skip


def hparams(cfg: Config) -> dict[str, Any]:
    return {key: _plain(lookup(cfg, key)) for key in HPARAMS}


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else str(value)


def results(state: TrainState) -> dict[str, float]:
    best = state.record(state.best_epoch) if state.best_epoch is not None else state.history[-1]
    last = state.history[-1]
    shown = [k for k in SHOWN_METRICS if k in best and k != "val_loss"][:1]  # the task's main metric
    return {
        **{f"hparam/best_{k}": best[k] for k in shown},
        "hparam/best_val_loss": best["val_loss"],
        **{f"hparam/final_{k}": last[k] for k in shown},
        "hparam/epochs_trained": float(last["epoch"]),
    }


def _input_line(p: Prepared) -> str:
    if p.spec.modality == "text":
        bucketed = ", batches bucketed by length" if p.cfg.data.bucket_by_length else ""
        return f"text, up to {p.cfg.data.max_length} tokens, padded per batch{bucketed}"
    size = p.built.data_config["input_size"]
    augment = "on" if p.cfg.data.augment.enabled else "off"
    return f"{size[1]}x{size[2]} {p.built.data_config['interpolation']}, augment {augment}"


def probe_line(p: Prepared, bundled: float | None) -> str:
    """'head solved on frozen features in 1.2s (L2 C=0.3 ...): val_acc 97.75%, val_loss 0.0640; bundle after 21s'"""
    r = p.probe.record
    line = (f"head solved on the frozen features in {p.probe.probe.seconds:.1f}s ({p.probe.probe.summary()}): "
            f"{format_metrics(r, ', ')}")  # fmt: skip
    return line + (
        f"; first bundle written {format_seconds(bundled)} into the run" if bundled is not None else ""
    )


def task_line(spec: DataSpec, monitor: str) -> str:
    """'multi-label, 5 labels (157 of 700 samples have ';'-separated labels; --task to choose); best by val_map'"""
    task = spec.task
    what = {"single-label": plural(len(spec.classes), "class"), "multi-label": plural(len(spec.classes), "label"),
            "regression": f"the number in '{spec.classes[0]}'"}[task.name]  # fmt: skip
    why = f" ({spec.task_reason}; --task to choose another)" if spec.task_reason else ""
    loss = f", {task.loss_name} loss on standardised targets" if task.name == "regression" else ""
    return f"{task.name}: {what}{why}{loss}; best by {monitor}"


def print_header(
    console: Console, p: Prepared, run_dir: Path, resume: Checkpoint | None, state: TrainState,
    first_bundle_s: float | None = None,
) -> None:  # fmt: skip
    cfg, built, spec = p.cfg, p.built, p.spec
    params = sum(x.numel() for x in built.model.parameters())
    accumulated = f" x {cfg.train.accum_steps} accumulated" if cfg.train.accum_steps > 1 else ""
    if distributed.world_size() > 1:
        accumulated += f" x {distributed.world_size()} processes"
    autocast = f" with {str(p.amp_dtype).split('.')[-1]} autocast" if p.amp_dtype else ""
    lr = f"lr {cfg.optim.lr:g}" + (" (from the LR range test)" if p.lr_find else "")
    limit = f", time limit {format_seconds(cfg.train.time_limit)}" if cfg.train.time_limit else ""
    counted = f"{len(spec.train)} train / {len(spec.val)} val"
    rows: list[tuple[str, Any]] = [
        ("data", f"{spec.description}: {counted}"),
        ("task", task_line(spec, cfg.checkpoint.monitor)),
        ("model", f"{cfg.model.name} ({built.family} {built.arch}, {params / 1e6:.1f}M params) from {built.weights}"),
        ("input", _input_line(p)),
    ]  # fmt: skip
    if p.cache_note:
        rows.append(("cache", p.cache_note))
    if p.probe is not None and resume is None:
        rows.append(("probe", probe_line(p, first_bundle_s)))
    rows.append(("train", f"{plural(cfg.train.epochs, 'epoch')}, batch {cfg.train.batch_size}{accumulated}, "
                          f"{cfg.optim.name} {lr} {cfg.optim.scheduler}, on {p.device}{autocast}{limit}"))  # fmt: skip
    if p.plan is not None:
        rows.append(("auto", f"{cfg.strategy.name}: {p.plan.reason}"))
    elif p.advice is not None:
        rows.append(("auto", f"{p.advice.strategy}: {p.advice.reason}"))
    measured = decision(p)
    if measured is not None and resume is None:
        write_advice(run_dir, measured)
    write_stages(run_dir, planned_stages(p))  # also on resume: the plan of the config saved just now
    rows.append(
        ("stages", describe(cfg.strategy.name, p.stages, p.groups) if cfg.train.epochs else "the probe alone")
    )
    if p.lr_find is not None:
        rows.append(
            (
                "lr",
                f"range test suggests {p.lr_find.suggestion:.2g}; plot {p.lr_find.plot(RunFolder(run_dir).lr_find)}",
            )
        )
    rows.append(("run", str(run_dir)))
    if resume is not None:
        position = (f"epoch {state.epoch + 1}, batch {state.batch_in_epoch}" if state.batch_in_epoch
                    else f"epoch {state.epoch + 1}")  # fmt: skip
        rows.append(("resume", f"from {resume.name} (step {state.step}): continuing at {position}"))
    for key, value in rows:
        console.print(f"[bold]{key:<6}[/bold] {value}", highlight=False)
    for warning in [*spec.warnings, *p.data_notes]:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
