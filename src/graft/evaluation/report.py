"""The report folder: index.html (self-contained: figures and thumbnails inline as base64 PNG), report.md
(with the figures as PNG files beside it) and metrics.json (every number, for scripts).

`Report` holds everything the pages show; render_html.py and render_markdown.py turn it into the two
pages, section by section (`SECTIONS`, in page order; multi-label and regression have their own,
`TASK_SECTIONS`). Multi-label and regression reports also write predictions.csv (one row per sample). The folder is written into a temporary sibling and
swapped in, so a report folder is always whole.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from graft.evaluation import plots
from graft.evaluation.context import RunContext
from graft.evaluation.gallery import GalleryEntry, Worst

SECTIONS = {  # id -> title
    "summary": "Summary",
    "curves": "Training curves",
    "confusion": "Confusion matrix",
    "confused-pairs": "Most-confused pairs",
    "per-class": "Per class",
    "calibration": "Calibration",
    "gallery": "Highest-loss samples",
    "data": "Data",
    "strategy": "Strategy",
    "config": "Resolved config",
}
MULTI_LABEL_SECTIONS = {
    "summary": "Summary",
    "curves": "Training curves",
    "per-label": "Per label",
    "pr-curves": "Precision-recall curves",
    "worst-per-label": "Worst samples per label",
    "data": "Data",
    "strategy": "Strategy",
    "config": "Resolved config",
}
REGRESSION_SECTIONS = {
    "summary": "Summary",
    "curves": "Training curves",
    "predicted-vs-true": "Predicted vs true",
    "residuals": "Residuals",
    "worst": "Largest errors",
    "data": "Data",
    "strategy": "Strategy",
    "config": "Resolved config",
}
TASK_SECTIONS = {
    "single-label": SECTIONS,
    "multi-label": MULTI_LABEL_SECTIONS,
    "regression": REGRESSION_SECTIONS,
}
# The validation metric the training curves show per task: (metrics.csv column, title, as a percentage).
CURVE_METRIC = {
    "single-label": ("val_acc", "validation accuracy (%)", True),
    "multi-label": ("val_map", "validation mAP (%)", True),
    "regression": ("val_mae", "validation MAE", False),
}


@dataclass
class Report:
    title: str
    about: dict[str, str]  # model, bundle, checkpoint, evaluated data: shown under the title
    metrics: dict[str, Any]  # evaluation/metrics.py
    classes: list[str]
    gallery: list[GalleryEntry]
    context: RunContext
    evaluated_counts: dict[str, int]  # class -> samples in the evaluated data
    best_epoch: int | None = None  # the bundled epoch, marked on the curves
    notes: list[str] = field(default_factory=list)  # warnings about the data, shown under the summary
    task: str = "single-label"  # graft/tasks/: which sections the pages have (TASK_SECTIONS)
    worst_by_label: dict[str, list[Worst]] = field(
        default_factory=dict
    )  # multi-label: label -> worst samples
    # What the figures are drawn from that metrics.json does not hold: multi-label "pr_curves" (per label
    # precision and recall lists), regression "true" and "predicted" (per sample)
    figure_data: dict[str, Any] = field(default_factory=dict)
    predictions: list[dict[str, Any]] | None = None  # predictions.csv rows (multi-label, regression)

    @property
    def sections(self) -> dict[str, str]:
        return TASK_SECTIONS[self.task]

    def figures(self) -> dict[str, bytes]:
        """File name -> PNG bytes."""
        m, d = self.metrics, self.figure_data
        if self.task == "multi-label":
            out = {"pr_curves.png": plots.pr_curves(d["pr_curves"], m["per_label"])}
        elif self.task == "regression":
            out = {
                "predicted_vs_true.png": plots.predicted_vs_true(d["true"], d["predicted"], m["target"]),
                "residuals.png": plots.residuals(d["true"], d["predicted"], m["target"]),
            }
        else:
            out = {
                "confusion.png": plots.confusion(m["confusion_matrix"], self.classes),
                "reliability.png": plots.reliability(m["reliability"], m["ece"]),
            }
        if self.context.history:
            metric, title, percent = CURVE_METRIC[self.task]
            if self.task == "single-label":  # the call as it always was: the same figure
                out["curves.png"] = plots.curves(self.context.history, self.best_epoch)
            else:
                out["curves.png"] = plots.curves(
                    self.context.history, self.best_epoch, metric, title, percent
                )
        return out

    def headline(self) -> list[tuple[str, str]]:
        m = self.metrics
        if self.task == "multi-label":
            return [
                ("mAP", pct(m["map"])),
                ("micro F1", f"{m['micro_f1']:.3f}"),
                ("macro F1", f"{m['macro_f1']:.3f}"),
                ("subset accuracy", pct(m["subset_accuracy"])),
                ("Hamming loss", f"{m['hamming_loss']:.4f}"),
                ("loss", f"{m['loss']:.4f}"),
                ("samples", str(m["num_samples"])),
            ]
        if self.task == "regression":
            return [
                ("MAE", num(m["mae"])),
                ("RMSE", num(m["rmse"])),
                ("R²", num(m["r2"])),
                ("Spearman", num(m["spearman"])),
                ("bias (mean error)", f"{m['residuals']['mean']:+.3g}"),
                *(
                    [("MAE predicting the training mean", num(m["baseline_mae"]))]
                    if m.get("baseline_mae") is not None
                    else []
                ),
                ("samples", str(m["num_samples"])),
            ]
        return [
            ("accuracy", pct(m["accuracy"])),
            (f"top-{m['top_k']} accuracy", pct(m["top_k_accuracy"])),
            ("macro F1", f"{m['macro_f1']:.3f}"),
            ("weighted F1", f"{m['weighted_f1']:.3f}"),
            (
                "ECE",
                pct(m["ece"])
                + (f" (uncalibrated {pct(m['calibration']['ece_before'])})" if m.get("calibration") else ""),
            ),
            ("loss", f"{m['loss']:.4f}"),
            ("samples", str(m["num_samples"])),
        ]

    def per_class_rows(self) -> list[list[str]]:
        """class, precision, recall, F1, support; recall is undefined (–) for a class with no samples."""
        return [
            [c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}" if c["support"] else "–", f"{c['f1']:.3f}",
             str(c["support"])]
            for c in self.metrics["per_class"]
        ]  # fmt: skip

    def per_label_rows(self) -> list[list[str]]:
        """label, threshold, precision, recall, F1, AP, support, predicted (multi-label); recall and AP are
        undefined (–) for a label with no positive sample."""
        return [
            [c["label"], f"{c['threshold']:.3f}", f"{c['precision']:.3f}", f"{c['recall']:.3f}" if c["support"] else "–",
             f"{c['f1']:.3f}", f"{c['ap']:.3f}" if c["ap"] is not None else "–", str(c["support"]), str(c["predicted"])]
            for c in self.metrics["per_label"]
        ]  # fmt: skip

    def residual_rows(self) -> list[list[str]]:
        """The residual (predicted - true) summary and the other error measures (regression)."""
        m, r = self.metrics, self.metrics["residuals"]
        return [
            ["mean (bias)", f"{r['mean']:+.4g}"],
            ["standard deviation", num(r["std"])],
            ["median", f"{r['median']:+.4g}"],
            ["median |error|", num(m["median_abs_error"])],
            ["90th percentile |error|", num(r["abs_p90"])],
            ["largest |error|", num(r["abs_max"])],
            ["Pearson r", num(m["pearson"])],
        ]

    def pair_rows(self) -> list[list[str]]:
        """true, predicted as, count, share of the true class."""
        return [
            [p["true"], p["predicted"], str(p["count"]), pct(p["share_of_true"])]
            for p in self.metrics["most_confused"]
        ]

    def count_rows(self) -> tuple[list[str], list[list[str]]]:
        """Images per class in the training run's splits and in the evaluated data, with totals; regression:
        the target's count, mean, spread and range per split. Multi-label: samples with each label; "all"
        then counts labels, not samples."""
        if self.task == "regression":
            columns = {f"{split} (training run)": v for split, v in self.context.split_values.items() if v}
            stats = {name: _summary(v) for name, v in columns.items()} | {"evaluated": self.metrics["true"]}
            rows = [[name, str(s["count"]), num(s["mean"]), num(s["std"]), num(s["min"]), num(s["max"])]
                    for name, s in stats.items()]  # fmt: skip
            return ["split", "samples", "mean", "std", "min", "max"], rows
        columns = {f"{split} (training run)": c for split, c in self.context.split_counts.items()}
        columns["evaluated"] = self.evaluated_counts
        rows = [[name, *(str(c.get(name, 0)) for c in columns.values())] for name in self.classes]
        rows.append(["all", *(str(sum(c.values())) for c in columns.values())])
        return ["class", *columns], rows


def pct(x: float) -> str:
    return f"{x:.2%}"


def _summary(values: list[float]) -> dict[str, float]:
    """As evaluation/regression.py `summary` (sample standard deviation), without torch."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "count": len(values),
        "mean": statistics.fmean(values),
        "std": std,
        "min": min(values),
        "max": max(values),
    }


def num(x: float | None) -> str:
    """A regression number as the pages write it; None (undefined, e.g. R² of a constant target) is –."""
    return "–" if x is None else f"{x:.4g}"


def calibration_note(m: dict[str, Any]) -> str:
    c = m["calibration"]
    fit = f" on {c['fit_on_samples']} validation samples" if c.get("fit_on_samples") else ""
    return (f"Temperature scaling: the logits are divided by T = {c['temperature']:.3g} (fit{fit} and folded into "
            f"the head's weights). Without it, ECE would be {pct(c['ece_before'])} and the loss "
            f"{c['loss_before']:.4f} (with it: {pct(m['ece'])}, {m['loss']:.4f}); a data set the temperature was "
            "fit on shows it at its best.")  # fmt: skip
