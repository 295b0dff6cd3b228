"""Which labels look wrong, and which samples look out of place: confident learning on out-of-fold outputs.

Given every sample's out-of-fold predicted probabilities (what a model fit without it says about it;
workflow/check.py computes them with the probe's head), cleanlab, the maintained implementation of
confident learning (Northcutt, Jiang & Chuang, JAIR 2021), decides which given labels to doubt:
  single-label  `cleanlab.filter.find_label_issues(filter_by="low_self_confidence")`: confident learning
                estimates how many labels are wrong (per class a confidence threshold, the mean probability
                the model gives that class's own samples; the samples above another class's threshold count
                as that class, and the off-diagonal of this confident joint is the count), and that many
                samples are flagged, those whose given label has the lowest probability. This is the rule of
                cleanlab's own path for large data (`find_label_issues_batched`); its default,
                prune_by_noise_rate, flags per (given, predicted) pair from a calibrated count instead,
                and flagged up to 1.5x as many samples: measured on the eight shared sets with 5% of the
                labels flipped, low_self_confidence had the better precision on seven (the same on
                cats_vs_dogs) and the better F1 on seven (not cats_vs_dogs: recall 0.73 instead of 0.83)
                (docs/benchmarks.md). The quality score is
                `cleanlab.rank.get_label_quality_scores` (self-confidence: the probability of the given
                label); the suggestion is the most probable class.
  multi-label   the same per label, one-vs-rest (`cleanlab.multilabel_classification`, the same rule): a
                sample is flagged when any of its labels is; the quality aggregates the per-label scores
                (cleanlab's default); the suggestion is the labels whose probability reaches graft's tuned
                per-label threshold.
Outliers: `cleanlab.outlier.OutOfDistribution` on the frozen features (mean cosine distance to the 10
nearest neighbours, as a score in [0, 1]), flagged by Datalab's default rule for features: a mean
distance beyond Q3 + 1.7 x IQR of all of them.

cleanlab is an optional dependency (`pip install 'torchgraft[labels]'`), imported when first used.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graft.data.discover import DataSpec, Label
from graft.data.text_tables import TextSample
from graft.errors import GraftError
from graft.runs.split import IMAGE_COLUMNS, PAIR_COLUMN, TEXT_COLUMNS

if TYPE_CHECKING:
    from rich.console import Console

INSTALL = "pip install 'torchgraft[labels]'"
RULE = "low_self_confidence"  # cleanlab's filter_by (the module docstring says why)
# Datalab's default for outliers on features: mean kNN distance above Q3 + (1 / 0.37037 - 1) x IQR.
OUTLIER_IQR = 1 / 0.37037 - 1
# Flagging more than this share of the data means the out-of-fold model is too weak for its disagreements to
# single out wrong labels: measured with 5% of the labels flipped, goemotions (28 labels, mAP 0.37) flagged
# 31% of its samples at a precision of 0.15, and training without them lost 7.5 points of mAP; the other
# seven sets flagged 2-13% (docs/benchmarks.md).
MANY_FLAGGED = 0.2
ISSUE_COLUMNS = ("suggested_label", "label_quality", "is_label_issue", "ood_score", "is_outlier",
                 "duplicate_cluster")  # fmt: skip


def require_cleanlab() -> None:
    """Fail in one line, before any work, when cleanlab is not installed."""
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        raise GraftError(f"--labels needs cleanlab (confident learning): {INSTALL}") from None


@dataclass
class LabelIssues:
    """Per sample of `spec` (training samples, then validation samples): what the label check found."""

    spec: DataSpec
    probs: np.ndarray  # (N, C) the out-of-fold probabilities (cleanlab's `pred_probs`), classes in spec order
    suggested: list[Label]  # what the out-of-fold model predicts
    quality: np.ndarray  # (N,) in [0, 1]: low, the given label is likely wrong
    flagged: np.ndarray  # (N,) bool: cleanlab's label issues
    ood: np.ndarray  # (N,) in [0, 1]: low, the sample is unlike the others
    outliers: np.ndarray  # (N,) bool
    clusters: list[list[str]] = field(default_factory=list)  # groups of copies (sample keys)
    model: str = ""
    folds: int = 0
    accuracy: float | None = None  # single-label: out-of-fold accuracy against the given labels
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: frozen pass, folds, cleanlab
    files: dict[str, Path] = field(default_factory=dict)  # "csv", "html": where they were written
    features: str = ""  # what the out-of-fold heads were fit on, in words

    @property
    def items(self) -> list:
        return [*self.spec.train, *self.spec.val]

    @property
    def splits(self) -> list[str]:
        return ["train"] * len(self.spec.train) + ["val"] * len(self.spec.val)

    @property
    def given(self) -> list[Label]:
        return [s.label for s in self.items]

    @property
    def noise_rate(self) -> float:
        """Confident learning's estimate of the share of wrong labels: the share it flags."""
        return float(self.flagged.mean()) if len(self.flagged) else 0.0

    def warnings(self) -> list[str]:
        """Where the flags say more about the model than about the labels."""
        if self.noise_rate <= MANY_FLAGGED:
            return []
        accuracy = f" (out-of-fold accuracy {self.accuracy:.0%})" if self.accuracy is not None else ""
        return [
            f"{self.noise_rate:.0%} of the samples are flagged, more than real data usually holds wrong: many "
            f"flags may be the model's own mistakes{accuracy}; look through the worst by hand before --fix, or "
            "check with a stronger --model"
        ]

    def ranked(self) -> list[int]:
        """Sample indices, flagged ones first, each part by quality (worst first), stable."""
        order = np.lexsort((self.quality, ~self.flagged))
        return [int(i) for i in order]

    def flagged_keys(self, split: str | None = None) -> set[str]:
        """The keys (path or text) of the flagged samples, of one split when given."""
        return {s.key for s, on, where in zip(self.items, self.flagged, self.splits)
                if on and split in (None, where)}  # fmt: skip

    def cluster_of(self) -> dict[str, int]:
        """Sample key -> its duplicate cluster's number (1, 2, ...: the page's order)."""
        return {key: n for n, group in enumerate(self.clusters, start=1) for key in group}

    def summary(self) -> dict:
        """What `graft check --labels --json` reports: counts, rates, files, the worst 20 flagged."""
        shown = [i for i in self.ranked() if self.flagged[i]][:20]
        return {
            "model": self.model, "features": self.features, "folds": self.folds, "samples": len(self.flagged),
            "flagged": int(self.flagged.sum()), "flagged_train": len(self.flagged_keys("train")),
            "noise_rate": self.noise_rate, "oof_accuracy": self.accuracy,
            "outliers": int(self.outliers.sum()), "duplicate_clusters": len(self.clusters),
            "seconds": self.seconds, "files": {k: str(v) for k, v in self.files.items()},
            "warnings": self.warnings(),
            "worst": [{"sample": _key_text(self.items[i]), "split": self.splits[i],
                       "label": self.spec.label_text(self.given[i]),
                       "suggested": self.spec.label_text(self.suggested[i]),
                       "quality": float(self.quality[i])} for i in shown],
        }  # fmt: skip


def find_issues(
    given: list[Label], probs: np.ndarray, task: str, thresholds: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray, list[Label]]:
    """(flagged (N,) bool, quality (N,), suggested labels) for `given` labels (class indices, or tuples of
    them for multi-label) and out-of-fold `probs` (N, C): softmax rows, or a sigmoid per label.
    `thresholds`: multi-label, the per-label cut-offs a suggestion uses (default 0.5)."""
    require_cleanlab()
    with warnings.catch_warnings():  # cleanlab warns of rare classes; the page shows what it found
        warnings.filterwarnings("ignore", module="cleanlab")
        if task == "multi-label":
            from cleanlab.multilabel_classification.filter import find_label_issues
            from cleanlab.multilabel_classification.rank import get_label_quality_scores

            sets = [list(label) for label in given]
            flagged = find_label_issues(labels=sets, pred_probs=probs, filter_by=RULE, n_jobs=1)
            quality = get_label_quality_scores(sets, probs)
            cut = np.asarray(thresholds if thresholds is not None else [0.5] * probs.shape[1])
            suggested: list[Label] = [tuple(int(j) for j in np.flatnonzero(row >= cut)) for row in probs]
        else:
            from cleanlab.filter import find_label_issues
            from cleanlab.rank import get_label_quality_scores

            labels = np.asarray(given, dtype=np.int64)
            # n_jobs=1: its multiprocessing pool costs more than it saves at thousands of samples
            flagged = find_label_issues(labels, probs, filter_by=RULE, n_jobs=1)
            # cleanlab's other rules drop the flags the model agrees with (its _reduce_issues); this one keeps
            # its count and may flag a low-confidence sample whose given label is still the most probable,
            # whose suggestion would be its own label. None on the six shared single-label sets.
            flagged &= probs.argmax(1) != labels
            quality = get_label_quality_scores(labels, probs)
            suggested = [int(k) for k in probs.argmax(1)]
    return np.asarray(flagged, dtype=bool), np.asarray(quality, dtype=np.float64), suggested


def outlier_scores(features: np.ndarray, neighbours: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(score (N,) in [0, 1], flagged (N,) bool): cleanlab's out-of-distribution score of each sample among
    all of them. The score is exp(-d / scale) of the mean distance d to the nearest neighbours, so the rule
    on d is applied to -log(score): the scale cancels in Q3 + k x IQR. Fewer samples than neighbours + 2:
    all 1.0, none flagged."""
    n = len(features)
    if n < neighbours + 2:
        return np.ones(n), np.zeros(n, dtype=bool)
    require_cleanlab()
    from cleanlab.outlier import OutOfDistribution

    scores = OutOfDistribution({"k": neighbours}).fit_score(features=features, verbose=False)
    distance = -np.log(np.clip(scores, 1e-300, 1.0))
    q1, q3 = np.percentile(distance, [25, 75])
    return np.asarray(scores, dtype=np.float64), distance > q3 + OUTLIER_IQR * (q3 - q1)


def write_issues_csv(path: Path, issues: LabelIssues) -> Path:
    """label_issues.csv: every sample, flagged ones first, worst first; the columns of a graft input (path or
    text, label, split[, text_pair]) so it reads back with `graft train`/`graft eval`, then ISSUE_COLUMNS."""
    spec, cluster = issues.spec, issues.cluster_of()
    text = spec.modality == "text"
    pairs = text and any(s.pair is not None for s in issues.items)
    head = [*(TEXT_COLUMNS if text else IMAGE_COLUMNS), *([PAIR_COLUMN] if pairs else []), *ISSUE_COLUMNS]
    items, splits, given = issues.items, issues.splits, issues.given
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        for i in issues.ranked():
            s = items[i]
            first = [s.text] if text else [str(Path(s.path).resolve())]
            writer.writerow([
                *first, spec.label_text(given[i]), splits[i], *([s.pair or ""] if pairs else []),
                spec.label_text(issues.suggested[i]), f"{issues.quality[i]:.6f}", int(issues.flagged[i]),
                f"{issues.ood[i]:.6f}", int(issues.outliers[i]), cluster.get(s.key, ""),
            ])  # fmt: skip
    return path


SHOWN = 20  # rows of the terminal table


def print_issues(console: Console, issues: LabelIssues, top: int = SHOWN) -> None:
    """The terminal's view: the `top` worst flagged samples as a table, then one summary line."""
    from rich.markup import escape
    from rich.table import Table

    shown = [i for i in issues.ranked() if issues.flagged[i]][:top]
    spec = issues.spec
    if shown:
        table = Table("file" if spec.modality == "image" else "text", "split", "given label", "suggested label",
                      "quality", title=f"the {len(shown)} likeliest wrong labels", title_justify="left")  # fmt: skip
        for i in shown:
            cells = (_shown(issues.items[i]), issues.splits[i], spec.label_text(issues.given[i]) or "(none)",
                     spec.label_text(issues.suggested[i]) or "(none)", f"{issues.quality[i]:.3f}")  # fmt: skip
            table.add_row(*map(escape, cells))  # file names and labels are not markup
        console.print(table)
    flagged, n = int(issues.flagged.sum()), len(issues.flagged)
    where = escape(f"; {issues.files['csv']}, {issues.files['html']}") if issues.files else ""
    console.print(
        f"[bold]labels[/bold] {flagged} of {n} flagged ({len(issues.flagged_keys('train'))} train, "
        f"{len(issues.flagged_keys('val'))} val; estimated noise rate {issues.noise_rate:.1%}), "
        f"{int(issues.outliers.sum())} outliers, {len(issues.clusters)} clusters of copies, "
        f"in {issues.seconds.get('total', 0.0):.1f}s{where}",
        highlight=False,
    )
    for warning in issues.warnings():
        console.print(f"[yellow]warning[/yellow] {escape(warning)}", highlight=False)


def _shown(item) -> str:
    if isinstance(item, TextSample):
        text = " ".join(item.text.split())
        return text if len(text) <= 60 else text[:59] + "…"
    path = Path(item.path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _key_text(item) -> str:
    return item.text[:80] if isinstance(item, TextSample) else str(item.path)
