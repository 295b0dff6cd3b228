"""`graft check DATA`: what is in the data, and what is wrong with it, before any training.

Run by `graft check` and at the start of every `graft train` (one summary block). It reads every file once:
  - the task (graft/tasks/) and, when --task auto chose it, why
  - single-label: counts per class and split; multi-label: per-label frequencies, labels per sample, samples
    with no label; regression: the target's statistics per split, outliers, a baseline MAE
  - image sizes and modes; text lengths
  - files that cannot be used (0 bytes, truncated, not an image, a mode PIL cannot convert): skipped with
    their paths, or an error under --strict
  - files that decode only after a conversion (CMYK, 16-bit, palette/RGBA transparency, grayscale, EXIF
    rotation): counted; `load_image` converts them the same way during training
  - train/val leaks (data/leaks.py); --dedupe removes the leaking validation samples; with `clusters`, the
    groups of copies among all samples (the label check's page lists them)
  - warnings for tiny classes (labels), heavy imbalance and a validation set too small to trust, and the
    class balancing a run uses when `data.balance` is auto; a label never in validation; target outliers
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from graft.config import Config
from graft.data.balance import balance_weights, choose_balance, class_weights, resolve_balance, sample_weights  # noqa: F401  (re-exported)
from graft.data.discover import DataSpec
from graft.data.image_info import ImageInfo, inspect_image  # noqa: F401  (re-exported)
from graft.data.leaks import duplicate_clusters, duplicates_within, image_leaks, text_clusters, text_leaks
from graft.data.report import DataReport, _short  # noqa: F401  (DataReport: re-exported)
from graft.errors import GraftError
from graft.progress import status, track

if TYPE_CHECKING:
    from rich.console import Console

TINY_CLASS = 10  # training samples below which a class is too small to learn reliably
HEAVY_IMBALANCE = 3.0  # largest / smallest training class from which a warning is shown
# Regression targets beyond Q1 - 3 IQR or Q3 + 3 IQR (Tukey's "far out" fences, twice his 1.5 for "outside",
# since real targets are often skewed), or with |z| > 4 where the IQR is 0, are reported as outliers.
OUTLIER_IQR = 3.0
OUTLIER_Z = 4.0
FEW_VALUES = 10  # whole-number targets with this many distinct values or fewer may be classes
UNTRUSTED_MARGIN = 0.10  # 95% interval half-width of validation accuracy above which it is flagged
SPINNER_TEXTS = 20_000  # texts from which their check shows a spinner (~50 us each: about a second)


def check_data(
    spec: DataSpec, workers: int | None = None, console: Console | None = None, clusters: bool = False
) -> DataReport:
    """Read every sample of `spec` once and report; changes nothing (see `apply_checks`). `console`: where
    the bar over the files is drawn (it reads them all, which takes a while on many; graft/progress.py).
    `clusters`: also group the copies among all samples (every pair compared: left to the label check)."""
    report = DataReport(spec.modality, spec.classes, {"train": spec.counts("train"), "val": spec.counts("val")},
                        task=spec.task.name, task_reason=spec.task_reason)  # fmt: skip
    usable = spec
    if spec.modality == "image":
        _check_images(spec, report, workers, console, clusters)
        broken = {p for p, _ in report.broken}  # the counts are of what training will read
        usable = replace(spec, train=[s for s in spec.train if str(s.path) not in broken],
                         val=[s for s in spec.val if str(s.path) not in broken])  # fmt: skip
    else:
        many = len(spec.train) + len(spec.val) >= SPINNER_TEXTS
        with status(f"check  reading {len(spec.train) + len(spec.val)} texts", console, quiet=not many):
            _check_texts(spec, report, clusters)
    report.counts = {split: usable.counts(split) for split in ("train", "val")}
    report.samples = {split: len(getattr(usable, split)) for split in ("train", "val")}
    train_counts = [report.counts["train"][c] for c in spec.classes]
    report.imbalance = max(train_counts) / max(min(train_counts), 1)
    if report.task == "single-label":
        report.balance, report.balance_reason = choose_balance(train_counts)
        report.val_margin = accuracy_margin(sum(report.counts["val"].values()))
        report.warnings = _warnings(spec, report)
    elif report.task == "multi-label":
        _check_label_sets(usable, report)
        report.warnings = _multi_label_warnings(report) + _shared_warnings(report)
    else:
        _check_targets(usable, report)
        report.imbalance = 1.0
        report.warnings = _regression_warnings(report) + _shared_warnings(report)
    return report


def _check_label_sets(spec: DataSpec, report: DataReport) -> None:
    for split in ("train", "val"):
        sizes = [len(s.label) for s in getattr(spec, split)]
        report.cardinality[split] = sum(sizes) / max(len(sizes), 1)
        report.unlabelled[split] = sizes.count(0)
    # Thresholds are tuned per label on validation, which undoes most of what imbalance does to a
    # sigmoid's cut-off; BCE's pos_weight stays available (resolve_balance).
    report.balance, report.balance_reason = "none", "per-label thresholds are tuned on validation; " \
        "--balance loss weighs each label's positives"  # fmt: skip


def _check_targets(spec: DataSpec, report: DataReport) -> None:
    for split in ("train", "val"):
        values = sorted(float(s.label) for s in getattr(spec, split))
        if values:
            report.targets[split] = {"n": len(values), "mean": statistics.fmean(values),
                                     "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                                     "min": values[0], "median": statistics.median(values), "max": values[-1]}  # fmt: skip
    samples = [*spec.train, *spec.val]
    distinct = sorted({float(s.label) for s in samples})
    if len(distinct) <= FEW_VALUES and all(v.is_integer() for v in distinct):
        report.few_values = distinct
    lo, hi = target_fences([float(s.label) for s in samples])
    report.outliers = [(s.key, float(s.label)) for s in samples if not lo <= float(s.label) <= hi]
    if "train" in report.targets and spec.val:
        median = report.targets["train"]["median"]
        errors = [abs(float(s.label) - median) for s in spec.val]
        report.baseline_mae = statistics.fmean(errors)
        report.mae_margin = (
            1.96 * statistics.stdev(errors) / math.sqrt(len(errors)) if len(errors) > 1 else None
        )


def target_fences(values: list[float]) -> tuple[float, float]:
    """The range outside which a target is an outlier: Tukey's fences at OUTLIER_IQR x the interquartile
    range, or mean +- OUTLIER_Z standard deviations where the IQR is 0 (a target mostly one value)."""
    if len(values) < 4:
        return -math.inf, math.inf
    q1, _, q3 = statistics.quantiles(values, n=4)
    if q3 > q1:
        return q1 - OUTLIER_IQR * (q3 - q1), q3 + OUTLIER_IQR * (q3 - q1)
    mean, std = statistics.fmean(values), statistics.pstdev(values)
    return (mean - OUTLIER_Z * std, mean + OUTLIER_Z * std) if std > 0 else (-math.inf, math.inf)


def _check_images(
    spec: DataSpec, report: DataReport, workers: int | None, console: Console | None, clusters: bool
) -> None:
    paths = sorted({s.path for s in spec.train} | {s.path for s in spec.val})
    # Decoding releases the GIL: threads overlap it without the start-up cost of processes.
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        inspected = list(
            track(pool.map(inspect_image, paths), "check  reading images", len(paths), "images", console)
        )
    infos = dict(zip(paths, inspected, strict=True))
    good = [i for i in infos.values() if i.problem is None]
    report.broken = [(str(i.path), i.problem) for i in infos.values() if i.problem is not None]
    report.conversions = Counter(i.conversion for i in good if i.conversion)
    report.modes = Counter(i.mode for i in good)
    if good:
        for axis, name in ((0, "width"), (1, "height")):
            values = sorted(i.size[axis] for i in good)
            report.sizes[name] = (values[0], int(statistics.median(values)), values[-1])

    def rows(samples):
        return [(str(s.path), infos[s.path].sha256, infos[s.path].phash) for s in samples
                if infos[s.path].problem is None]  # fmt: skip

    report.leaks = image_leaks(rows(spec.train), rows(spec.val))
    report.train_duplicates = duplicates_within([sha for _, sha, _ in rows(spec.train)])
    if clusters:
        report.clusters = duplicate_clusters(rows(spec.train) + rows(spec.val))


def _check_texts(spec: DataSpec, report: DataReport, clusters: bool) -> None:
    for split in ("train", "val"):
        words = sorted(len(s.text.split()) + len((s.pair or "").split()) for s in getattr(spec, split))
        if words:
            report.lengths[split] = (words[0], int(statistics.median(words)), words[-1])
    report.leaks = text_leaks([s.key for s in spec.train], [s.key for s in spec.val])
    report.train_duplicates = duplicates_within([s.key for s in spec.train])
    if clusters:
        report.clusters = text_clusters([s.key for s in [*spec.train, *spec.val]])


def accuracy_margin(n_val: int) -> float:
    """Half-width of the 95% normal interval of an accuracy measured on n samples, at its widest (p=0.5)."""
    return 1.96 * math.sqrt(0.25 / max(n_val, 1))


def _warnings(spec: DataSpec, report: DataReport) -> list[str]:
    """Single-label's warnings: classes, imbalance, the validation set's size, then the shared ones."""
    warnings = []
    train, val = report.counts["train"], report.counts["val"]
    tiny = [f"{c} ({train[c]})" for c in spec.classes if train[c] < TINY_CLASS]
    if tiny:
        warnings.append(
            f"tiny classes: {', '.join(tiny)} training samples; fewer than {TINY_CLASS} is too few to "
            "learn a class reliably, add samples"
        )
    unmeasured = [c for c in spec.classes if val[c] == 0]
    if unmeasured:
        warnings.append(f"no validation samples for {', '.join(unmeasured)}: their accuracy is not measured")
    if report.imbalance >= HEAVY_IMBALANCE:
        big = max(spec.classes, key=lambda c: train[c])
        small = min(spec.classes, key=lambda c: train[c])
        warnings.append(
            f"heavy imbalance: {big} has {train[big]} training samples, {small} {train[small]} "
            f"({report.imbalance:.0f}x); balancing with --balance {report.balance} "
            "(or --balance sampler|loss|none)"
        )
    if report.val_margin > UNTRUSTED_MARGIN:
        warnings.append(
            f"validation set of {sum(val.values())} is too small to trust: accuracy is known to "
            f"+-{report.val_margin:.0%} (95% interval), so smaller differences between runs are noise"
        )
    return warnings + _shared_warnings(report)


def _multi_label_warnings(report: DataReport) -> list[str]:
    warnings = []
    train, val, n_train = report.counts["train"], report.counts["val"], report.samples["train"]
    rare = [f"{c} ({train[c]})" for c in report.classes if train[c] < TINY_CLASS]
    if rare:
        warnings.append(
            f"labels in fewer than {TINY_CLASS} training samples: {', '.join(rare)}; too few to learn a label "
            "reliably, add samples with them"
        )
    always = [c for c in report.classes if n_train and train[c] == n_train]
    if always:
        warnings.append(
            f"{', '.join(always)} is on in every training sample: there is nothing to learn for it"
        )
    unmeasured = [c for c in report.classes if val[c] == 0]
    if unmeasured:
        warnings.append(
            f"no validation samples with {', '.join(unmeasured)}: their AP (and tuned threshold) is not "
            "measured; add validation samples with them"
        )
    if report.imbalance >= 10 * HEAVY_IMBALANCE:
        big = max(report.classes, key=lambda c: train[c])
        small = min(report.classes, key=lambda c: train[c])
        warnings.append(
            f"heavy label imbalance: {big} is on in {train[big]} training samples, {small} in {train[small]} "
            f"({report.imbalance:.0f}x); --balance loss weighs each label's positives by negatives/positives"
        )
    return warnings


def _regression_warnings(report: DataReport) -> list[str]:
    warnings = []
    if report.outliers:
        key, value = max(report.outliers, key=lambda kv: abs(kv[1] - report.targets["train"]["median"]))
        warnings.append(
            f"{len(report.outliers)} target outlier(s) far from the rest (beyond {OUTLIER_IQR:g}x the "
            f"interquartile range), e.g. {_short(key)} = {value:.6g}; a typo or a unit mix-up? Squared error "
            "weighs them heavily: fix them, or --regression-loss huber"
        )
    if report.few_values:
        shown = ", ".join(f"{v:g}" for v in report.few_values)
        warnings.append(
            f"the target takes only {len(report.few_values)} whole values ({shown}): regression treats them as "
            "ordered numbers (right for a rating or a count); if they are categories, --task single-label"
        )
    return warnings


def _shared_warnings(report: DataReport) -> list[str]:
    """Warnings of every task: leaks, duplicates, unreadable files."""
    warnings = []
    if report.leaks:
        kinds = Counter(leak.kind for leak in report.leaks)
        first = report.leaks[0]
        warnings.append(
            f"{len(report.leaks)} validation sample(s) duplicate training samples "
            f"({kinds['exact']} exact, {kinds['near']} near), e.g. {_short(first.val)} ~ {_short(first.train)}; "
            "validation accuracy will look better than it is (--dedupe drops them from validation)"
        )
    if report.train_duplicates:
        warnings.append(f"{report.train_duplicates} exact duplicate(s) inside the training data")
    if report.broken:
        listed = ", ".join(f"{p} ({why})" for p, why in report.broken[:5])
        more = f" and {len(report.broken) - 5} more" if len(report.broken) > 5 else ""
        warnings.append(
            f"{len(report.broken)} unreadable file(s) skipped: {listed}{more} (--strict makes this an error)"
        )
    return warnings


def apply_checks(spec: DataSpec, report: DataReport, strict: bool = False, dedupe: bool = False) -> DataSpec:
    """The samples a run trains on: unreadable files removed (an error under `strict`), and with `dedupe`
    the validation samples that leak from training."""
    if report.broken and strict:
        listed = ", ".join(f"{p} ({why})" for p, why in report.broken[:5])
        more = f" and {len(report.broken) - 5} more" if len(report.broken) > 5 else ""
        raise GraftError(
            f"{len(report.broken)} unreadable file(s): {listed}{more}; fix or remove them, "
            "or drop --strict to skip them"
        )
    broken = {p for p, _ in report.broken}
    leaked = {leak.val for leak in report.leaks} if dedupe else set()

    def keep(samples, drop):
        return [s for s in samples if (str(s.path) if spec.modality == "image" else s.key) not in drop]

    train = keep(spec.train, broken) if spec.modality == "image" else spec.train
    val = keep(keep(spec.val, broken) if spec.modality == "image" else spec.val, leaked)
    kept = replace(spec, train=train)
    empty = [c for c, n in kept.counts("train").items() if n == 0] if spec.task.name != "regression" else []
    if empty:
        raise GraftError(
            f"no readable training samples left for {', '.join(empty)} after skipping unreadable files; "
            "add readable images for them"
        )
    if not val:
        raise GraftError("no validation samples left after skipping unreadable files and duplicates")
    if spec.task.name == "regression" and len({float(s.label) for s in train}) == 1:
        raise GraftError(
            f"the target '{spec.classes[0]}' is {float(train[0].label):g} in every training sample: there is "
            "nothing to learn; check that --label-column names the column to predict"
        )
    return replace(spec, train=train, val=val)


SHOWN_PAIRS = 20  # leak pairs printed (all of them with --json)


def print_report(console: Console, spec: DataSpec, report: DataReport, warnings: list[str]) -> None:
    """What `graft check` (and `graft.check(verbose=True)`) prints: the data, the summary, every skipped
    file, the leaking pairs (the first SHOWN_PAIRS) and the warnings."""
    console.print(f"[bold]data[/bold]   {spec.description}", highlight=False)
    for line in report.lines():
        console.print(f"[bold]check[/bold]  {line}", highlight=False)
    for path, reason in report.broken:
        console.print(f"[red]skip[/red]   {path}: {reason}", highlight=False)
    for leak in report.leaks[:SHOWN_PAIRS]:
        how = "identical" if leak.kind == "exact" else f"near-duplicate (phash distance {leak.distance})"
        if spec.modality == "text" and leak.kind == "near":
            how = "near-duplicate (same text after normalising case, punctuation, spaces)"
        console.print(f"[yellow]leak[/yellow]   val {_shown_key(leak.val)} = train {_shown_key(leak.train)}: {how}",
                      highlight=False)  # fmt: skip
    if len(report.leaks) > SHOWN_PAIRS:
        console.print(f"       ... and {len(report.leaks) - SHOWN_PAIRS} more (--json lists all)")
    for warning in warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)


def _shown_key(key: str) -> str:
    return key if "\x00" not in key else repr(key.split("\x00")[0][:60])


def check_for_training(cfg: Config, spec: DataSpec, console: Console) -> DataSpec:
    """`graft train`'s data check: one summary block, then the samples the run trains on."""
    report = check_data(spec, console=console)
    if cfg.data.balance != "auto":
        report.balance, report.balance_reason = cfg.data.balance, "--balance given"
    spec_kept = apply_checks(spec, report, cfg.data.strict, cfg.data.dedupe)
    for line in report.lines():
        console.print(f"[bold]{'check':<6}[/bold] {line}", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    dropped = len({leak.val for leak in report.leaks})  # leaks are found among readable files only
    if cfg.data.dedupe and dropped:
        console.print(
            f"[bold]{'dedupe':<6}[/bold] {dropped} leaking validation sample(s) dropped", highlight=False
        )
    return spec_kept
