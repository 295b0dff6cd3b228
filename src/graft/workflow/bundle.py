"""Which model a run's bundle holds, calibrated: written once right after the probe (the run's first
usable model) and again at the end from the best checkpoint, each time with its temperature fit on the
validation logits of exactly that model (evaluation/calibration.py) and folded into its head.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console

from graft.errors import GraftError
from graft.evaluation.calibration import Calibration, cannot_fit, fit_temperature, fold_temperature
from graft.exporting.bundle import write_bundle
from graft.runs.best import ranking, resolve_mode
from graft.runs.folder import RunFolder
from graft.runs.store import Checkpoint, CheckpointStore
from graft.strategies.stages import stage_at
from graft.tasks import format_metric, tune_thresholds
from graft.training import distributed
from graft.training.loop import validate
from graft.training.prepare import Prepared


def write_run_bundle(
    run_dir: Path,
    p: Prepared,
    record: dict[str, float],
    checkpoint: str,
    logits: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
) -> Calibration | None:
    """runs/NAME/model/ from `p.model` as it is now (left untouched: the bundle gets a calibrated copy)."""
    model = copy.deepcopy(distributed.unwrap(p.model)).cpu()
    task = p.spec.task
    head = next((name for name, module in p.model.named_modules() if module is p.head), None)
    calibration, task_spec = None, task.to_meta()
    if task.name == "regression" and head is not None:  # the bundle outputs the target in its own units
        _fold_scaling(model.get_submodule(head), task.mean, task.std)
    fits = logits is not None and targets is not None and head is not None
    if fits and task.name == "multi-label":  # per-label cut-offs, tuned on exactly this model's outputs
        task_spec = replace(task, thresholds=tune_thresholds(logits, targets)).to_meta()
    elif fits and task.name == "single-label" and cannot_fit(logits, targets) is None:
        calibration = fit_temperature(logits, targets)
        fold_temperature(model.get_submodule(head), calibration.temperature)
    write_bundle(
        RunFolder(run_dir).bundle, p.built, model, p.spec.classes,
        metrics={k: v for k, v in record.items() if k == "epoch" or k.startswith("val_")},
        source={"run": str(run_dir), "data": str(p.cfg.data.path), "checkpoint": checkpoint},
        tokenizer=p.tokenizer,
        calibration=None if calibration is None else calibration.to_dict(),
        task_spec=task_spec,
    )  # fmt: skip
    return calibration


@torch.no_grad()
def _fold_scaling(head: torch.nn.Module, mean: float, std: float) -> None:
    """Regression trains on standardised targets: y = out * std + mean, folded into the head's last Linear."""
    linear = (
        head
        if isinstance(head, torch.nn.Linear)
        else [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    )
    linear.weight.mul_(std)
    if linear.bias is not None:
        linear.bias.mul_(std).add_(mean)


def load_best(
    run_dir: Path, p: Prepared, console: Console
) -> tuple[Checkpoint, dict[str, float], str | None]:
    """Put the best checkpoint's weights into `p.model` (every rank); if it is damaged, the newest intact
    one instead. Returns the checkpoint, the history row of its epoch, and, when it is not the best, the
    words saying which was bundled and why (the run's last line says them instead of "best ...")."""
    store = CheckpointStore(RunFolder(run_dir).checkpoints)
    name = store.read_index().best
    problem = store.verify(name) if name else "no best checkpoint recorded"
    checkpoint = store.latest_good() if problem else store.load(name)
    if checkpoint is None:
        raise GraftError(f"no intact checkpoint in {RunFolder(run_dir).checkpoints} to bundle ({problem})")
    progress = checkpoint.state["progress"]
    epoch = progress["best_epoch"] if not problem else progress["epoch"]
    history = progress["history"]
    record = next((r for r in history if r["epoch"] == epoch), history[-1] if history else None)
    if record is None:
        raise GraftError(f"checkpoint {checkpoint.name} has no finished epoch to bundle ({problem})")
    note = None
    if problem:
        mid = (
            f", {progress['batch_in_epoch']} batches into epoch {epoch + 1}"
            if progress["batch_in_epoch"]
            else ""
        )
        note = (f"the best checkpoint {name} is damaged ({problem}), so the bundle holds {checkpoint.name}, "
                f"the newest intact one (after epoch {record['epoch']}{mid})")  # fmt: skip
        console.print(f"[yellow]warning[/yellow] {note}", highlight=False)
    distributed.unwrap(p.model).load_state_dict(checkpoint.model)
    return checkpoint, record, note


def val_logits(p: Prepared, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) validation logits and targets of `p.model` as it is, through what epoch `epoch` evaluated on
    (the probe's features, a cut's stored activations, or the images). A collective under torchrun."""
    if epoch == 0 and p.probe is not None:
        return p.probe.outputs.logits, p.probe.outputs.targets
    inputs = p.inputs_for(stage_at(p.stages, max(0, epoch - 1)))
    _, outputs = validate(inputs.evaluated, inputs.val, p.device, p.amp_dtype, p.spec.task)
    return outputs.logits, outputs.targets


def describe_bundle(p: Prepared, record: dict[str, float], history: list[dict[str, float]]) -> str:
    """One line: which epoch the bundle holds and, after a fine-tune, how it compares with the probe."""
    metric = (
        p.cfg.checkpoint.monitor
    )  # a metric name; the config key says `monitor`, as Keras and Lightning do
    shown = lambda r: format_metric(metric, r[metric])  # noqa: E731
    epochs = p.cfg.train.epochs
    line = f"{metric} {shown(record)} at epoch {record['epoch']}/{epochs}"
    probe = next((r for r in history if r["epoch"] == 0), None)
    tuned = [r for r in history if r["epoch"] > 0]
    if probe is None or not tuned:
        return line + (" (the solved head)" if probe is not None else "")
    if record["epoch"] == 0:
        mode = resolve_mode(metric, p.cfg.checkpoint.mode)
        best_tuned = max(tuned, key=lambda r: ranking(r[metric], r["val_loss"], metric, mode))
        return (f"{line}: the solved head; fine-tuning's best, epoch {best_tuned['epoch']} at {shown(best_tuned)}, "
                "did not beat it")  # fmt: skip
    return f"{line}: fine-tuned, vs the solved head's {shown(probe)}"
