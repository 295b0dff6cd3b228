"""`graft check` as one verb: the data check, with `--labels` the label check, and the cleaned CSV.

  discover -> check_data (every file once; with --labels also the copies among all samples) -> apply_checks
  --labels   the model on the data (training/build.py), the frozen features of train + val with the eval
             transform (label_features: training/frozen.py, through the feature cache; images also seen in
             a mirror, texts as their token mean), out-of-fold probabilities of the probe's head on them
             (training/out_of_fold.py), confident learning and outliers (data/label_issues.py);
             label_issues.csv and label_issues.html written into --out (default runs/check-NAME)
  --fix, --dedupe   the cleaned CSV beside the data (data/cleaned.py)
Every user error is raised before the first expensive pass: the task, cleanlab, the output folder, the
cleaned CSV's place.

The features are chosen for telling wrong labels apart, not to be the head graft train starts from.
Measured with 5% of the training labels flipped on the shared sets (docs/benchmarks.md): the mirror view
ranked the flipped samples higher on all four single-label photo sets (flowers: 17 -> 18 of the 20 worst
are flipped) and raised out-of-fold accuracy on three (flowers 79.8% -> 82.2%; cats_vs_dogs the same);
the token mean raised it on the texts (ag_news 83.6% -> 85.2%, imdb 70.3% -> 78.2%; BERT's pooler was
trained for next-sentence prediction, and all-MiniLM's sentence embedding is its token mean).

One round, as cleanlab is meant to be used: out-of-fold probabilities, then `find_label_issues`. A second
round (`rounds=2`: every fold refit without the first round's flags, confident learning's prune-and-refit)
was measured on eight shared sets with 5% of the labels flipped (benchmarks/label_issues.py): with the
earlier features and rule, better on three (cats_vs_dogs 1.00 / 0.73 -> 0.86 / 0.83 precision / recall),
worse on four, the same F1 on average, at twice the folds; it stays a parameter for that measurement.

`--fix` changes training samples only: flagged validation samples are listed for a person to look at.
Dropping the validation samples the model disagrees with would make validation accuracy look better than it
is, for the same reason a leaked duplicate does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graft.config import Config
from graft.data.balance import balance_weights
from graft.data.check import apply_checks, check_data
from graft.data.cleaned import claim_cleaned, cleaned_path, spare, whole_classes, write_cleaned
from graft.data.discover import DataSpec, discover_config
from graft.data.label_issues import (
    LabelIssues,
    find_issues,
    outlier_scores,
    require_cleanlab,
    write_issues_csv,
)
from graft.data.report import DataReport
from graft.errors import GraftError
from graft.evaluation.label_page import render_label_page
from graft.files import replace_folder, staging_folder
from graft.strategies.groups import layer_groups
from graft.strategies.stages import head_module
from graft.tasks import tune_thresholds
from graft.training.build import ModelOnData, build_on_data, mirrored
from graft.training.frozen import record_frozen
from graft.training.out_of_fold import FOLDS, out_of_fold

FIXES = ("drop", "relabel")
ROUNDS = 1
ENCODER_MEAN = "encoder:mean"  # the feature cache's name for a text encoder's token states averaged per text
ISSUES_CSV, ISSUES_HTML = "label_issues.csv", "label_issues.html"


@dataclass
class Checked:
    spec: DataSpec  # as found
    kept: DataSpec  # what training would use (unreadable files skipped; --dedupe: leaks dropped)
    report: DataReport  # .label_issues with --labels, .cleaned with --fix or --dedupe
    cleaned_note: str = ""  # what the cleaned CSV holds, and what was left out or changed


def default_check_dir(cfg: Config) -> Path:
    """runs/check-NAME: beside the runs, out of the user's data; one per data name, replaced by the next
    check of the same data (a check's files are derived, unlike a run's)."""
    return Path("runs") / f"check-{Path(cfg.data.path).stem or 'data'}"


def run_check(
    cfg: Config,
    *,
    labels: bool = False,
    folds: int | None = None,
    fix: str | None = None,
    out: Path | None = None,
    cleaned: Path | None = None,
    console: Console | None = None,
) -> Checked:
    """The data check of `cfg.data` (with `labels`, the label check too: `folds`-fold out-of-fold
    probabilities, files in `out`), and with `fix` or `cfg.data.dedupe` the cleaned CSV at `cleaned`
    (default beside the data). `console`: where a terminal gets the progress bars."""
    folds = FOLDS if folds is None else folds
    if fix is not None and fix not in FIXES:
        raise GraftError(f"--fix {fix!r}: choose drop (leave the flagged training samples out) or relabel "
                         "(give them the suggested label)")  # fmt: skip
    if fix is not None and not labels:
        raise GraftError("--fix acts on the labels --labels finds; add --labels (--dedupe alone writes the "
                         "cleaned CSV without the leaking validation samples)")  # fmt: skip
    if labels and folds < 2:
        raise GraftError(f"--folds {folds}: out-of-fold predictions need at least 2 folds (default {FOLDS})")
    spec = discover_config(cfg)
    if labels:
        if spec.task.name == "regression":
            raise GraftError(
                "--labels looks for wrong classes; this data is regression (a number per sample): the "
                "check lists its target outliers (beyond 3x the interquartile range) without --labels"
            )
        require_cleanlab()
        out = claim_check_dir(Path(out) if out is not None else default_check_dir(cfg))
    write_csv = fix is not None or cfg.data.dedupe
    if write_csv:
        cleaned = claim_cleaned(Path(cleaned) if cleaned else cleaned_path(cfg.data.path), cfg.data.path)
    report = check_data(spec, console=console, clusters=labels)
    kept = apply_checks(spec, report, cfg.data.strict, cfg.data.dedupe)
    if labels:
        issues = check_labels(cfg, kept, report, folds, console)
        issues.files = write_label_files(out, issues, str(cfg.data.path))
        report.label_issues = issues
    note = ""
    if write_csv:
        issues = report.label_issues
        flagged = issues.flagged_keys("train") if issues is not None else set()
        held = whole_classes(kept, flagged) if fix is not None else []
        flagged = spare(kept, flagged, held)
        drop = flagged if fix == "drop" else set()
        relabel = ({s.key: label for s, label in zip(issues.items, issues.suggested)
                    if s.key in flagged and label != s.label} if fix == "relabel" else {})  # fmt: skip
        report.cleaned = write_cleaned(cleaned, kept, drop, relabel)
        note = _cleaned_note(spec, kept, drop, relabel, [kept.classes[c] for c in held])
    return Checked(spec, kept, report, note)


def check_labels(
    cfg: Config, spec: DataSpec, report: DataReport, folds: int, console: Console | None, rounds: int = ROUNDS
) -> LabelIssues:
    """The label check of `spec`'s training and validation samples (see the module docstring)."""
    started = time.perf_counter()
    md = build_on_data(cfg, spec)
    head = head_module(md.model, layer_groups(md.model))
    if head is None:
        raise GraftError(f"--labels fits a linear head on the model's features; {md.cfg.model.name}'s head is not "
                         "one Linear layer: choose another --model")  # fmt: skip
    seconds = {"model": time.perf_counter() - started}
    multi = spec.task.name == "multi-label"
    with _bars(console) as bars:
        x, y, features, seconds["frozen_pass"] = label_features(md, spec, head, bars)
        loss_weights = balance_weights(md.cfg.data.balance, spec)[1]
        weights = None if loss_weights is None else torch.tensor(loss_weights)
        given = [s.label for s in [*spec.train, *spec.val]]
        fold_bar = bars.add_task("labels  out-of-fold heads", total=folds * rounds) if bars else None
        advance = (lambda: bars.advance(fold_bar)) if bars else None
        excluded, fit_seconds, issue_seconds = None, 0.0, 0.0
        for _ in range(rounds):
            oof = out_of_fold(x, y, spec.task.name, len(spec.classes), folds, md.cfg.train.seed, weights,
                              excluded, advance)  # fmt: skip
            fit_seconds += oof.seconds
            begun = time.perf_counter()
            thresholds = tune_thresholds(oof.logits, y) if multi else None
            flagged, quality, suggested = find_issues(given, oof.probs.numpy(), spec.task.name, thresholds)
            issue_seconds += time.perf_counter() - begun
            excluded = torch.from_numpy(flagged)
    begun = time.perf_counter()
    ood, outliers = outlier_scores(x.numpy())
    seconds |= {"folds": fit_seconds, "cleanlab": issue_seconds, "outliers": time.perf_counter() - begun}
    seconds["total"] = time.perf_counter() - started
    accuracy = None if multi else float((oof.probs.argmax(1) == y.long()).float().mean())
    return LabelIssues(spec, oof.probs.numpy(), suggested, quality, flagged, ood, outliers, report.clusters,
                       md.cfg.model.name, folds, accuracy, seconds, features=features)  # fmt: skip


def label_features(
    md: ModelOnData, spec: DataSpec, head: torch.nn.Module, bars: Progress | None
) -> tuple[torch.Tensor, torch.Tensor, str, float]:
    """(x (N, D), y (N,) or (N, C), what x is, seconds) for the training then validation samples: what the
    out-of-fold heads are fit on, through the feature cache.
      images  the head's input; when the training augmentation flips images (hflip > 0, so a mirror image is
              the same class), averaged with the mirror image's: a second frozen pass
      texts   the encoder's last hidden states averaged over each text's tokens (sentence-transformers'
              sentence embedding) rather than the head's input (BERT's pooler over [CLS])
    Why these, measured: the module docstring."""
    encoder = getattr(md.model, "encoder", None) if spec.modality == "text" else None
    tap = "head" if encoder is None else ENCODER_MEAN
    extra = None if encoder is None else {ENCODER_MEAN: (encoder, "mean")}
    # `head` also for texts: its input is recorded in the same pass (small), and passing it keeps the head's
    # fresh weights out of the cache key.
    frozen = record_frozen(md.cfg, spec, _counted(md, bars), head, [], extra=extra)
    x = torch.cat([frozen.tensors[f"{tap}/train_x"], frozen.tensors[f"{tap}/val_x"]])
    y = torch.cat([frozen.tensors["train_y"], frozen.tensors["val_y"]])
    if encoder is not None:
        return x, y, "the encoder's token states averaged per text", frozen.seconds
    augment, seen = md.cfg.data.augment, mirrored(md)
    if seen is None or not augment.enabled or augment.hflip <= 0:
        return x, y, "the head's input features", frozen.seconds
    flipped = record_frozen(md.cfg, spec, _counted(seen, bars, "mirrored"), head, [])
    x = (x + torch.cat([flipped.tensors["head/train_x"], flipped.tensors["head/val_x"]])) / 2
    what = "the head's input features, averaged over each image and its mirror image"
    return x, y, what, frozen.seconds + flipped.seconds


def _cleaned_note(spec: DataSpec, kept: DataSpec, drop: set[str], relabel: dict, held: list[str]) -> str:
    """'570 train / 400 val (30 flagged training samples dropped, 2 leaking validation samples dropped)'."""
    changes = [f"{n} {what}" for n, what in (
        (len(drop), "flagged training samples dropped"), (len(relabel), "flagged training samples relabelled"),
        (len(spec.train) - len(kept.train), "unreadable training files dropped"),
        (len(spec.val) - len(kept.val), "unreadable or leaking validation samples dropped")) if n]  # fmt: skip
    if held:
        names = ", ".join(repr(name) for name in held)
        changes.append(f"every training sample of {names} was flagged: those are kept as they are")
    counts = f"{len(kept.train) - len(drop)} train / {len(kept.val)} val"
    return counts + (f" ({', '.join(changes)})" if changes else " (nothing to change)")


def claim_check_dir(out: Path) -> Path:
    """`out` may take a label check's files: absent, empty, or an earlier label check's folder (replaced
    whole); never a run or anything else. Creates nothing."""
    if out.exists():
        if not out.is_dir():
            raise GraftError(f"--out {out} is a file, not a folder")
        names = {p.name for p in out.iterdir()}
        if names and ISSUES_CSV not in names:
            raise GraftError(f"--out {out} already holds other files (not an earlier label check); choose "
                             "another --out (nothing was changed)")  # fmt: skip
    return out


def write_label_files(out: Path, issues: LabelIssues, data: str) -> dict[str, Path]:
    """label_issues.csv and label_issues.html in `out`, swapped in whole."""
    tmp = staging_folder(out)
    write_issues_csv(tmp / ISSUES_CSV, issues)
    (tmp / ISSUES_HTML).write_text(render_label_page(issues, data), encoding="utf-8")
    replace_folder(tmp, out)
    return {"csv": out / ISSUES_CSV, "html": out / ISSUES_HTML}


@contextmanager
def _bars(console: Console | None) -> Iterator[Progress | None]:
    """Progress bars on a terminal (the frozen pass's batches, then the folds), nothing elsewhere."""
    if console is None or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        yield bars


def _counted(md, bars: Progress | None, view: str = ""):
    """`md` with loaders whose batches advance a bar (the frozen pass, which may be a cache hit: no batches)."""
    if bars is None:
        return md
    what = f"frozen pass, {view}" if view else "frozen pass"
    task, batches = bars.add_task(f"labels  {what} (batches)", total=0), [0]

    def eval_loader(samples):
        loader = md.eval_loader(samples)
        batches[0] += len(loader)  # texts: one loader per split
        bars.update(task, total=batches[0])
        return _Counted(loader, lambda: bars.advance(task))

    return replace(md, eval_loader=eval_loader)


class _Counted:
    """A DataLoader whose batches also advance a progress bar; anything else is the loader's own."""

    def __init__(self, loader, advance):
        self.loader, self.advance = loader, advance

    def __iter__(self):
        for batch in self.loader:
            yield batch
            self.advance()

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)
