"""The report folder: index.html (self-contained: figures and thumbnails inline as base64 PNG), report.md
(with the figures as PNG files beside it) and metrics.json (every number, for scripts).

`Report` holds everything the pages show; render_html.py and render_markdown.py turn it into the two
pages, section by section (`SECTIONS`, in page order). The folder is written into a temporary sibling and
swapped in, so a report folder is always whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graft.evaluation import plots
from graft.evaluation.context import RunContext
from graft.evaluation.gallery import GalleryEntry

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

    def figures(self) -> dict[str, bytes]:
        """File name -> PNG bytes."""
        m = self.metrics
        out = {
            "confusion.png": plots.confusion(m["confusion_matrix"], self.classes),
            "reliability.png": plots.reliability(m["reliability"], m["ece"]),
        }
        if self.context.history:
            out["curves.png"] = plots.curves(self.context.history, self.best_epoch)
        return out

    def headline(self) -> list[tuple[str, str]]:
        m = self.metrics
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

    def pair_rows(self) -> list[list[str]]:
        """true, predicted as, count, share of the true class."""
        return [
            [p["true"], p["predicted"], str(p["count"]), pct(p["share_of_true"])]
            for p in self.metrics["most_confused"]
        ]

    def count_rows(self) -> tuple[list[str], list[list[str]]]:
        """Images per class in the training run's splits and in the evaluated data, with totals."""
        columns = {f"{split} (training run)": c for split, c in self.context.split_counts.items()}
        columns["evaluated"] = self.evaluated_counts
        rows = [[name, *(str(c.get(name, 0)) for c in columns.values())] for name in self.classes]
        rows.append(["all", *(str(sum(c.values())) for c in columns.values())])
        return ["class", *columns], rows


def pct(x: float) -> str:
    return f"{x:.2%}"


def calibration_note(m: dict[str, Any]) -> str:
    c = m["calibration"]
    fit = f" on {c['fit_on_samples']} validation samples" if c.get("fit_on_samples") else ""
    return (f"Temperature scaling: the logits are divided by T = {c['temperature']:.3g} (fit{fit} and folded into "
            f"the head's weights). Without it, ECE would be {pct(c['ece_before'])} and the loss "
            f"{c['loss_before']:.4f} (with it: {pct(m['ece'])}, {m['loss']:.4f}); a data set the temperature was "
            "fit on shows it at its best.")  # fmt: skip
