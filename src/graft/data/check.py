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
  - train/val leaks (data/leaks.py); --dedupe removes the leaking validation samples
  - warnings for tiny classes (labels), heavy imbalance and a validation set too small to trust, and the
    class balancing a run uses when `data.balance` is auto; a label never in validation; target outliers
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps, UnidentifiedImageError
from rich.progress import track

from graft.config import Config
from graft.data.discover import DataSpec
from graft.data.leaks import Leak, duplicates_within, image_leaks, text_leaks
from graft.errors import GraftError

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
EXIF_ORIENTATION = 0x0112
# Modes that decode but have no faithful 8-bit RGB: PIL would clip float pixels (0..1 turns black).
UNSUPPORTED_MODES = {"F": "unsupported mode F (32-bit float pixels); save it as an 8- or 16-bit PNG"}


@dataclass
class ImageInfo:
    path: Path
    sha256: str = ""
    size: tuple[int, int] | None = None
    mode: str | None = None
    phash: int | None = None  # None for flat images, whose perceptual hash says nothing
    problem: str | None = None  # why the file cannot be used
    conversion: str | None = None  # what decoding does to make it 8-bit RGB, upright


def inspect_image(path: Path) -> ImageInfo:
    """Decode one file fully, as training will (truncation only shows when the pixels are read)."""
    import imagehash

    from graft.data.decode import to_rgb

    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return ImageInfo(path, problem=f"cannot read ({err.strerror})")
    if not data:
        return ImageInfo(path, problem="empty file (0 bytes)")
    info = ImageInfo(path, sha256=hashlib.sha256(data).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as img:
            info.mode, info.size = img.mode, img.size
            img.load()
            rotated = img.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
            transparent = "transparency" in img.info
            rgb = to_rgb(ImageOps.exif_transpose(img))
    except UnidentifiedImageError:
        info.problem = "not an image (no decoder recognises it)"
        return info
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        info.problem = f"cannot decode ({str(err).strip() or type(err).__name__})"
        return info
    if info.mode in UNSUPPORTED_MODES:
        info.problem = UNSUPPORTED_MODES[info.mode]
        return info
    info.conversion = _conversion(info.mode, transparent, rotated)
    gray = rgb.convert("L").resize((32, 32))
    if max(gray.getextrema()) - min(gray.getextrema()) > 8:
        info.phash = int(str(imagehash.phash(rgb)), 16)
    return info


def _conversion(mode: str, transparent: bool, rotated: bool) -> str | None:
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        what = "16-bit scaled to 8-bit"
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and transparent):
        what = "transparency composited on white"
    elif mode in ("L", "1"):
        what = "grayscale expanded to RGB"
    elif mode != "RGB":
        what = f"{mode} converted to RGB"
    else:
        what = None
    if rotated:
        what = f"{what}, EXIF orientation applied" if what else "EXIF orientation applied"
    return what


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
        }


def check_data(spec: DataSpec, workers: int | None = None, console: Console | None = None) -> DataReport:
    """Read every sample of `spec` once and report; changes nothing (see `apply_checks`). `console`: a
    terminal gets a progress bar over the files (it reads them all, which takes a while on many)."""
    report = DataReport(spec.modality, spec.classes, {"train": spec.counts("train"), "val": spec.counts("val")},
                        task=spec.task.name, task_reason=spec.task_reason)  # fmt: skip
    usable = spec
    if spec.modality == "image":
        _check_images(spec, report, workers, console)
        broken = {p for p, _ in report.broken}  # the counts are of what training will read
        usable = replace(spec, train=[s for s in spec.train if str(s.path) not in broken],
                         val=[s for s in spec.val if str(s.path) not in broken])  # fmt: skip
    else:
        _check_texts(spec, report)
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


def _check_images(spec: DataSpec, report: DataReport, workers: int | None, console: Console | None) -> None:
    paths = sorted({s.path for s in spec.train} | {s.path for s in spec.val})
    # Decoding releases the GIL: threads overlap it without the start-up cost of processes.
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        inspected = pool.map(inspect_image, paths)
        if console is not None and console.is_terminal:
            inspected = track(inspected, total=len(paths), description="check  reading images", console=console,
                              transient=True)  # fmt: skip
        infos = dict(zip(paths, inspected))
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


def _check_texts(spec: DataSpec, report: DataReport) -> None:
    for split in ("train", "val"):
        words = sorted(len(s.text.split()) + len((s.pair or "").split()) for s in getattr(spec, split))
        if words:
            report.lengths[split] = (words[0], int(statistics.median(words)), words[-1])
    report.leaks = text_leaks([s.key for s in spec.train], [s.key for s in spec.val])
    report.train_duplicates = duplicates_within([s.key for s in spec.train])


def choose_balance(train_counts: list[int]) -> tuple[str, str]:
    """What data.balance=auto means for these class sizes, and why.

    Up to 2x, plain cross-entropy: the bias is small and reweighting only adds gradient noise. Up to 10x,
    class-weighted loss: every sample is seen once per epoch, the rare classes count as much in total.
    Beyond 10x, a weighted sampler: a loss weight of 10x or more on a handful of samples makes steps
    erratic, while oversampling shows the rare samples often, each time differently augmented."""
    ratio = max(train_counts) / max(min(train_counts), 1)
    if ratio < 2:
        return "none", "classes within 2x of each other"
    if ratio < 10:
        return "loss", "class-weighted cross-entropy, for imbalance under 10x"
    return "sampler", "weighted sampling, for imbalance of 10x or more"


def class_weights(train_counts: list[int]) -> list[float]:
    """Cross-entropy weights n / (classes * n_c) (sklearn's "balanced"): every class weighs the same in total."""
    total, k = sum(train_counts), len(train_counts)
    return [total / (k * max(n, 1)) for n in train_counts]


def sample_weights(labels: list[int], train_counts: list[int]) -> list[float]:
    """Per-sample draw weights 1 / n_class: each class is drawn equally often."""
    return [1.0 / train_counts[label] for label in labels]


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


def _short(key: str) -> str:
    text = key.split("\x00")[0]
    return text if os.path.sep in text else repr(text[:50])


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


def resolve_balance(balance: str, spec: DataSpec) -> str:
    """data.balance with auto replaced by the choice for this data's class sizes. Regression has no
    classes to balance; multi-label balances only when asked (--balance loss: BCE's pos_weight), since its
    thresholds are tuned per label on validation anyway."""
    if spec.task.name != "single-label":
        if balance == "sampler" or (balance == "loss" and spec.task.name == "regression"):
            raise GraftError(f"--balance {balance} is not available for {spec.task.name}: "
                             f"choose {'none or loss' if spec.task.name == 'multi-label' else 'none'}")  # fmt: skip
        return "none" if balance == "auto" else balance
    return choose_balance(list(spec.counts("train").values()))[0] if balance == "auto" else balance


POS_WEIGHT_MAX = 10.0  # a label in 1% of the samples weighs its positives 10x, not 99x (steps stay steady)


def balance_weights(balance: str, spec: DataSpec) -> tuple[list[float] | None, list[float] | None]:
    """(per-sample draw weights for the training sampler, per-class loss weights) for a resolved balance;
    multi-label's loss weights are BCE's pos_weight per label: negatives / positives, at most POS_WEIGHT_MAX."""
    counts = list(spec.counts("train").values())
    if spec.task.name == "multi-label":
        n = len(spec.train)
        return None, (
            [min(POS_WEIGHT_MAX, (n - c) / max(c, 1)) for c in counts] if balance == "loss" else None
        )
    if balance == "sampler":
        return sample_weights([s.label for s in spec.train], counts), None
    if balance == "loss":
        return None, class_weights(counts)
    return None, None


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
