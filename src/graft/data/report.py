"""What the data check found (data/check.py fills it): the numbers per task, the files it could not use, the
leaks, the warnings; `lines()` is the summary `graft check` prints, `to_dict()` its --json."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.data.leaks import Leak

if TYPE_CHECKING:
    from graft.data.label_issues import LabelIssues


@dataclass
class DataReport:
    modality: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> samples
    broken: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), unusable files
    conversions: Counter[str] = field(default_factory=Counter)
    sizes: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # width/height -> min, median, max
    modes: Counter[str] = field(default_factory=Counter)
    lengths: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # split -> words min/median/max
    leaks: list[Leak] = field(default_factory=list)
    train_duplicates: int = 0  # exact copies inside the training split
    imbalance: float = 1.0  # largest / smallest training class
    balance: str = "none"  # what data.balance=auto resolves to
    balance_reason: str = ""
    val_margin: float = 0.0  # half-width of the 95% interval of validation accuracy
    warnings: list[str] = field(default_factory=list)
    task: str = "single-label"
    task_reason: str = ""  # why --task auto chose the task ("" when it was given)
    samples: dict[str, int] = field(default_factory=dict)  # split -> samples (multi-label counts overlap)
    # multi-label: split -> mean labels per sample
    cardinality: dict[str, float] = field(default_factory=dict)
    unlabelled: dict[str, int] = field(default_factory=dict)  # multi-label: split -> samples with no label
    targets: dict[str, dict[str, float]] = field(default_factory=dict)  # regression: split -> n, mean, ...
    outliers: list[tuple[str, float]] = field(default_factory=list)  # regression: (sample, target)
    few_values: list[float] = field(default_factory=list)  # regression: the values, when few and whole
    baseline_mae: float | None = None  # regression: val MAE of always predicting the training median
    mae_margin: float | None = None  # ... and the half-width of its 95% interval
    clusters: list[list[str]] = field(default_factory=list)  # groups of copies (check_data(clusters=True))
    label_issues: LabelIssues | None = None  # graft check --labels (workflow/check.py)
    cleaned: Path | None = None  # the cleaned CSV written by --fix or --dedupe

    def lines(self) -> list[str]:
        """The summary block: what `graft check` prints and `graft train` shows before training."""
        if self.task == "multi-label":
            return self._multi_label_lines()
        if self.task == "regression":
            return self._regression_lines()
        return self._single_label_lines()

    def _task_line(self) -> str:
        return f"task {self.task} ({'auto: ' + self.task_reason if self.task_reason else 'as given'})"

    def _single_label_lines(self) -> list[str]:
        train, val = self.counts["train"], self.counts["val"]
        per_class = ", ".join(f"{name} {train[name]}/{val[name]}" for name in self.classes)
        out = [f"{sum(train.values())} train / {sum(val.values())} val; per class (train/val): {per_class}"]
        out += self._input_lines()
        out.append(
            f"imbalance {self.imbalance:.1f}x -> balance {self.balance} ({self.balance_reason}); "
            f"val accuracy known to +-{self.val_margin:.0%} (95%)"
        )
        return out

    def _multi_label_lines(self) -> list[str]:
        train, val = self.counts["train"], self.counts["val"]
        per_label = ", ".join(f"{name} {train[name]}/{val[name]}" for name in self.classes)
        out = [self._task_line(),
               f"{self.samples['train']} train / {self.samples['val']} val samples; per label (train/val): {per_label}",
               f"labels per sample {self.cardinality['train']:.2f} train / {self.cardinality['val']:.2f} val "
               f"(mean); samples with no label {self.unlabelled['train']} train / {self.unlabelled['val']} val"]  # fmt: skip
        out += self._input_lines()
        out.append(f"label imbalance {self.imbalance:.1f}x -> balance {self.balance} ({self.balance_reason})")
        return out

    def _regression_lines(self) -> list[str]:
        out = [self._task_line(), f"{self.samples['train']} train / {self.samples['val']} val samples; "
               f"target '{self.classes[0]}'"]  # fmt: skip
        for split, t in self.targets.items():
            out.append(f"target {split} n {t['n']:g}, mean {t['mean']:.4g}, std {t['std']:.4g}, "
                       f"min {t['min']:.4g}, median {t['median']:.4g}, max {t['max']:.4g}")  # fmt: skip
        out += self._input_lines()
        if self.baseline_mae is not None:
            median = self.targets["train"]["median"]
            margin = f" +- {self.mae_margin:.3g} (95%)" if self.mae_margin is not None else ""
            out.append(f"baseline val MAE {self.baseline_mae:.4g}{margin}: always predicting the training median "
                       f"{median:.4g}; a model must beat it")  # fmt: skip
        return out

    def _input_lines(self) -> list[str]:
        out = []
        if self.modality == "image" and self.sizes:
            (w0, w1, w2), (h0, h1, h2) = self.sizes["width"], self.sizes["height"]
            modes = ", ".join(f"{m} {n}" for m, n in self.modes.most_common())
            out.append(f"images {w0}-{w2} x {h0}-{h2} px (median {w1}x{h1}); modes {modes}")
        if self.conversions:
            out.append(
                "converted on load: " + "; ".join(f"{n} {what}" for what, n in self.conversions.most_common())
            )
        for split, (lo, mid, hi) in self.lengths.items():
            out.append(f"{split} texts {lo}-{hi} words (median {mid})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "classes": self.classes,
            "counts": self.counts,
            "broken": [{"path": p, "reason": r} for p, r in self.broken],
            "conversions": dict(self.conversions),
            "sizes": self.sizes,
            "modes": dict(self.modes),
            "lengths": self.lengths,
            "leaks": [vars(leak) for leak in self.leaks],
            "train_duplicates": self.train_duplicates,
            "imbalance": self.imbalance,
            "balance": self.balance,
            "balance_reason": self.balance_reason,
            "val_margin": self.val_margin if self.task == "single-label" else None,
            "warnings": self.warnings,
            "task": self.task,
            "task_reason": self.task_reason,
            "samples": self.samples,
            "cardinality": self.cardinality,
            "unlabelled": self.unlabelled,
            "targets": self.targets,
            "outliers": [{"sample": _short(key), "target": value} for key, value in self.outliers],
            "few_values": self.few_values,
            "baseline_mae": self.baseline_mae,
            "mae_margin": self.mae_margin,
            "clusters": [[_short(key) for key in group] for group in self.clusters],
            **({"labels": self.label_issues.summary()} if self.label_issues is not None else {}),
            "cleaned": str(self.cleaned) if self.cleaned is not None else None,
        }


def _short(key: str) -> str:
    text = key.split("\x00")[0]
    return text if os.path.sep in text else repr(text[:50])
