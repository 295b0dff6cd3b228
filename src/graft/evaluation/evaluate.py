"""`graft eval`: a bundle's model on labelled data -> every metric, and a report folder.

    evaluate("runs/NAME")                        # the run's validation split -> runs/NAME/report/
    evaluate("runs/NAME", data="holdout/")       # -> runs/NAME/report-holdout/
    evaluate("shared/model", data="labels.csv")  # a bundle outside its run -> shared/model-report-labels/

It always evaluates the bundle (the best checkpoint, as shipped), loaded the way `graft predict` loads it.
plan.py decides what to evaluate (and raises every user error) before this module's torch import;
`report_after_training` runs it all at the end of `graft train`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader

from graft.data.discover import Sample
from graft.data.images import ImageDataset
from graft.data.text_tables import TextSample
from graft.evaluation import multilabel, regression
from graft.evaluation.context import read_run_context
from graft.evaluation.data import EvalData
from graft.evaluation.gallery import highest_loss
from graft.evaluation.metrics import classification_metrics, expected_calibration_error
from graft.evaluation.pages import write_report
from graft.evaluation.plan import EVALUATED_TASKS, EvalPlan, label_reading, plan_evaluation
from graft.evaluation.report import Report
from graft.files import json_ready
from graft.predict.images import Predictor
from graft.progress import progress_to, status, step_bar
from graft.runs.locate import locate
from graft.tasks import from_meta

IN_PROCESS_BELOW = 512  # samples: fewer are decoded in-process (starting DataLoader workers costs more)


@dataclass
class Evaluation:
    out: Path  # the report folder
    metrics: dict
    data: EvalData


def evaluate(
    target: str | Path,
    data: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int = 0,
    logits: torch.Tensor | None = None,
    model: nn.Module | None = None,
    quiet: bool = False,
) -> Evaluation:
    """`quiet`: no progress bars (graft/progress.py draws them on stderr, or on the console of the run
    this is called in)."""
    with progress_to(None, quiet):
        return run_plan(plan_evaluation(target, data, out), device, batch_size, num_workers, logits, model)


def run_plan(
    plan: EvalPlan, device: str = "auto", batch_size: int = 64, num_workers: int = 0,
    logits: torch.Tensor | None = None, model: nn.Module | None = None,
) -> Evaluation:  # fmt: skip
    """The bundle's logits on the planned samples -> metrics -> the report folder. `logits`: the bundle's
    logits on exactly these samples, already computed (the end of training), else computed here. `model`:
    for a custom module's bundle, an object of its architecture (graft.load's `model=`)."""
    located, eval_data, classes = plan.located, plan.data, plan.located.classes
    meta, task = located.meta, from_meta(located.meta)
    predictor = Predictor.from_path(located.bundle, device=device, model=model)
    targets = task.targets(eval_data.targets)  # class indices, multi-hot rows, or the numbers
    if logits is None or logits.shape != (len(targets), task.outputs(classes)):
        workers = 0 if len(eval_data.items) < IN_PROCESS_BELOW else num_workers
        logits = LOGITS[plan.task](predictor, eval_data.items, batch_size, workers)
    labels = label_reading(located)
    context = read_run_context(located.run, predictor.model, classes, task.name, labels.separator)
    counts = eval_data.counts(classes)
    notes = list(eval_data.warnings)
    extra: dict = {}
    if task.name == "multi-label":
        thresholds = task.cutoffs().tolist()
        metrics = json_ready(multilabel.multilabel_metrics(logits, targets, classes, thresholds))
        extra = {
            "worst_by_label": multilabel.worst_per_label(
                eval_data.items, logits, targets, classes, thresholds
            ),
            "figure_data": {"pr_curves": multilabel.pr_curves(logits, targets)},
            "predictions": multilabel.prediction_rows(
                eval_data.items, logits, targets, classes, thresholds, labels.separator
            ),  # fmt: skip
        }
    elif task.name == "regression":
        predicted = logits.reshape(-1)  # the bundle outputs the number: nothing to decode
        true = torch.tensor(eval_data.targets, dtype=torch.float64)
        train_mean = (meta.get("task_spec") or {}).get("train_mean")
        metrics = json_ready(regression.regression_metrics(predicted, true, classes[0], train_mean))
        extra = {
            "figure_data": {"true": true.tolist(), "predicted": predicted.double().tolist()},
            "predictions": regression.prediction_rows(predicted, true),
        }
        gallery = regression.largest_errors(eval_data.items, predicted, true)
    else:
        # Rounded as metrics.json writes them: what evaluate() returns and what the file says are the same numbers.
        metrics = json_ready(classification_metrics(logits, targets, classes))
        if (meta.get("calibration") or {}).get(
            "temperature"
        ):  # the head was divided by T: undo it to compare
            metrics["calibration"] = calibration_effect(logits, targets, meta["calibration"])
        gallery = highest_loss(eval_data.items, logits, targets, classes)
    if "predictions" in extra:
        extra["predictions"] = [
            sample_columns(item) | row
            for item, row in zip(eval_data.items, extra["predictions"], strict=True)
        ]
    absent = [name for name, n in counts.items() if n == 0]
    if absent and task.name != "regression":
        notes.append(f"{len(absent)} class(es) have no samples in this data: {', '.join(absent[:10])}; "
                     "their recall is undefined (shown as –)")  # fmt: skip
    trained = meta.get("metrics", {})
    outputs = {"regression": "regression, one number", "multi-label": f"multi-label, {len(classes)} labels"}
    report = Report(
        title=f"{located.run.name if located.run else located.bundle.name}: evaluation",
        about={
            "model": f"{meta['arch']} ({meta['family']}, {outputs.get(task.name, f'{len(classes)} classes')})",
            "bundle": str(located.bundle),
            "checkpoint": f"{meta.get('checkpoint', '?')}"
            + (f", epoch {trained['epoch']}" if "epoch" in trained else ""),
            "data": f"{eval_data.description}: {len(eval_data.items)} samples",
        },
        metrics=metrics,
        classes=classes,
        gallery=[] if task.name == "multi-label" else gallery,
        context=context,
        evaluated_counts=counts,
        best_epoch=trained.get("epoch"),
        notes=notes,
        task=task.name,
        **extra,
    )
    with status(f"eval   writing the report to {plan.out}"):
        write_report(plan.out, report)
    return Evaluation(plan.out, metrics, eval_data)


def sample_columns(item: Path | TextSample) -> dict[str, str]:
    """What a sample is, as predictions.csv's first columns: its path, or its text (and pair)."""
    if isinstance(item, TextSample):
        return {"text": item.text} | ({"text_pair": item.pair} if item.pair is not None else {})
    return {"path": str(item)}


def calibration_effect(logits: torch.Tensor, targets: torch.Tensor, calibration: dict) -> dict:
    """ECE and loss on this data with the temperature undone (before) and as bundled (after)."""
    t = calibration["temperature"]
    before = logits.float() * t
    return {
        "temperature": t,
        "fit_on_samples": calibration.get("samples"),
        "ece_before": expected_calibration_error(before, targets),
        "loss_before": F.cross_entropy(before, targets).item(),
    }


def _text_logits(predictor, items: list, batch_size: int, num_workers: int) -> torch.Tensor:
    """(N, C) logits in `items` order; batches of similar length, so padding stays short."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].text) + len(items[i].pair or ""))
    logits = torch.empty(len(items), len(predictor.classes))
    with step_bar("eval   predicting", len(items), "texts") as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            pairs = [items[i].pair for i in chunk] if items[chunk[0]].pair is not None else None
            logits[chunk] = predictor.logits([items[i].text for i in chunk], pairs)
            bar.advance(len(chunk))
    return logits


@torch.inference_mode()
def _image_logits(predictor, items: list[Path], batch_size: int, num_workers: int) -> torch.Tensor:
    """(N, C) float32 logits in `items` order, through the bundle's eval transform."""
    dataset = ImageDataset([Sample(path, 0) for path in items], predictor.transform)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    logits = []
    with step_bar("eval   predicting", len(items), "images") as bar:
        for x, _ in loader:
            logits.append(predictor.model(x.to(predictor.device)).float().cpu())
            bar.advance(len(x))
    return torch.cat(logits)


# bundle task -> (predictor, items, batch_size, num_workers) -> logits; one entry per plan.EVALUATED_TASKS.
LOGITS: dict[str, Callable[..., torch.Tensor]] = {
    "image-classification": _image_logits,
    "text-classification": _text_logits,
}
assert set(LOGITS) == set(EVALUATED_TASKS), f"{set(LOGITS)} vs {set(EVALUATED_TASKS)}"


def report_after_training(
    run_dir: Path, console: Console, device: str = "auto", num_workers: int = 0,
    logits: torch.Tensor | None = None, model: nn.Module | None = None,
) -> None:  # fmt: skip
    """The end of `graft train`: evaluate the bundled best model on the validation split. A failure here
    never fails the run (its model is already saved): it is a warning with the command to retry. Tasks
    without an evaluation yet (LOGITS) are skipped. `logits`: the bundle's validation logits, which
    training just computed with the same weights (from the frozen part's stored output where there is
    one); `graft eval RUN` recomputes them from the bundle and gives the same numbers (tested)."""
    try:
        if locate(run_dir).meta.get("task", "image-classification") not in EVALUATED_TASKS:
            return
        result = evaluate(run_dir, device=device, num_workers=num_workers, logits=logits, model=model)
    except Exception as err:  # noqa: BLE001  any failure: the run itself succeeded
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        console.print(f"[yellow]warning[/yellow] no evaluation report ({type(err).__name__}: {reason[:200]}); "
                      f"retry with: graft eval {run_dir}", highlight=False)  # fmt: skip
        return
    console.print(f"[bold]report[/bold] {result.out / 'index.html'}: {summary_line(result.metrics)} on "
                  f"{result.metrics['num_samples']} validation samples", highlight=False)  # fmt: skip


def summary_line(m: dict) -> str:
    """The headline numbers of metrics.json in one line, per task."""
    if m.get("task") == "multi-label":
        return (f"mAP {m['map']:.2%}, micro F1 {m['micro_f1']:.3f}, macro F1 {m['macro_f1']:.3f}, "
                f"subset accuracy {m['subset_accuracy']:.2%}")  # fmt: skip
    if m.get("task") == "regression":
        shown = lambda x: "–" if x is None else f"{x:.4g}"  # noqa: E731
        return f"MAE {shown(m['mae'])}, RMSE {shown(m['rmse'])}, R² {shown(m['r2'])}, Spearman {shown(m['spearman'])}"
    return f"accuracy {m['accuracy']:.2%}, macro F1 {m['macro_f1']:.3f}, ECE {m['ece']:.2%}"
