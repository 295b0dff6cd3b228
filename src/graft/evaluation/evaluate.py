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
from torch.utils.data import DataLoader

from graft.data.discover import Sample
from graft.data.images import ImageDataset
from graft.evaluation.context import read_run_context
from graft.evaluation.data import EvalData
from graft.evaluation.gallery import highest_loss
from graft.evaluation.metrics import classification_metrics, expected_calibration_error
from graft.evaluation.pages import write_report
from graft.evaluation.plan import EVALUATED_TASKS, EvalPlan, plan_evaluation
from graft.evaluation.report import Report
from graft.files import json_ready
from graft.predict.images import Predictor
from graft.runs.locate import locate

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
) -> Evaluation:
    return run_plan(plan_evaluation(target, data, out), device, batch_size, num_workers, logits)


def run_plan(
    plan: EvalPlan, device: str = "auto", batch_size: int = 64, num_workers: int = 0,
    logits: torch.Tensor | None = None,
) -> Evaluation:  # fmt: skip
    """The bundle's logits on the planned samples -> metrics -> the report folder. `logits`: the bundle's
    logits on exactly these samples, already computed (the end of training), else computed here."""
    located, eval_data, classes = plan.located, plan.data, plan.located.classes
    predictor = Predictor.from_path(located.bundle, device=device)
    targets = torch.tensor(eval_data.targets)
    if logits is None or logits.shape != (len(targets), len(classes)):
        workers = 0 if len(eval_data.items) < IN_PROCESS_BELOW else num_workers
        logits = LOGITS[plan.task](predictor, eval_data.items, batch_size, workers)
    # Rounded as metrics.json writes them: what evaluate() returns and what the file says are the same numbers.
    metrics = json_ready(classification_metrics(logits, targets, classes))
    meta = located.meta
    if (meta.get("calibration") or {}).get("temperature"):  # the head was divided by T: undo it to compare
        metrics["calibration"] = calibration_effect(logits, targets, meta["calibration"])
    context = read_run_context(located.run, predictor.model, classes)
    counts = eval_data.counts(classes)
    absent = [name for name, n in counts.items() if n == 0]
    notes = list(eval_data.warnings)
    if absent:
        notes.append(f"{len(absent)} class(es) have no samples in this data: {', '.join(absent[:10])}; "
                     "their recall is undefined (shown as –)")  # fmt: skip
    trained = meta.get("metrics", {})
    report = Report(
        title=f"{located.run.name if located.run else located.bundle.name}: evaluation",
        about={
            "model": f"{meta['arch']} ({meta['family']}, {len(classes)} classes)",
            "bundle": str(located.bundle),
            "checkpoint": f"{meta.get('checkpoint', '?')}"
            + (f", epoch {trained['epoch']}" if "epoch" in trained else ""),
            "data": f"{eval_data.description}: {len(eval_data.items)} samples",
        },
        metrics=metrics,
        classes=classes,
        gallery=highest_loss(eval_data.items, logits, targets, classes),
        context=context,
        evaluated_counts=counts,
        best_epoch=trained.get("epoch"),
        notes=notes,
    )
    write_report(plan.out, report)
    return Evaluation(plan.out, metrics, eval_data)


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
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        pairs = [items[i].pair for i in chunk] if items[chunk[0]].pair is not None else None
        logits[chunk] = predictor.logits([items[i].text for i in chunk], pairs)
    return logits


@torch.inference_mode()
def _image_logits(predictor, items: list[Path], batch_size: int, num_workers: int) -> torch.Tensor:
    """(N, C) float32 logits in `items` order, through the bundle's eval transform."""
    dataset = ImageDataset([Sample(path, 0) for path in items], predictor.transform)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    return torch.cat([predictor.model(x.to(predictor.device)).float().cpu() for x, _ in loader])


# bundle task -> (predictor, items, batch_size, num_workers) -> logits; one entry per plan.EVALUATED_TASKS.
LOGITS: dict[str, Callable[..., torch.Tensor]] = {
    "image-classification": _image_logits,
    "text-classification": _text_logits,
}
assert set(LOGITS) == set(EVALUATED_TASKS), f"{set(LOGITS)} vs {set(EVALUATED_TASKS)}"


def report_after_training(
    run_dir: Path, console: Console, device: str = "auto", num_workers: int = 0,
    logits: torch.Tensor | None = None,
) -> None:  # fmt: skip
    """The end of `graft train`: evaluate the bundled best model on the validation split. A failure here
    never fails the run (its model is already saved): it is a warning with the command to retry. Tasks
    without an evaluation yet (LOGITS) are skipped. `logits`: the bundle's validation logits, which
    training just computed with the same weights (from the frozen part's stored output where there is
    one); `graft eval RUN` recomputes them from the bundle and gives the same numbers (tested)."""
    try:
        if locate(run_dir).meta.get("task", "image-classification") not in EVALUATED_TASKS:
            return
        result = evaluate(run_dir, device=device, num_workers=num_workers, logits=logits)
    except Exception as err:  # noqa: BLE001  any failure: the run itself succeeded
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        console.print(f"[yellow]warning[/yellow] no evaluation report ({type(err).__name__}: {reason[:200]}); "
                      f"retry with: graft eval {run_dir}", highlight=False)  # fmt: skip
        return
    m = result.metrics
    console.print(f"[bold]report[/bold] {result.out / 'index.html'}: accuracy {m['accuracy']:.2%}, macro F1 "
                  f"{m['macro_f1']:.3f}, ECE {m['ece']:.2%} on {m['num_samples']} validation samples", highlight=False)  # fmt: skip
