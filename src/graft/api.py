"""The Python API; the CLI is a thin shell over these functions.

    >>> run = graft.train("my_images/", model="efficientnet_lite0", epochs=5, lr=3e-4)   # doctest: +SKIP
    >>> run.best_metric, run.path, run.metrics["accuracy"]                               # doctest: +SKIP
    >>> graft.load(run.path).predict(["photo.jpg"], top_k=3)                             # doctest: +SKIP
    >>> graft.evaluate(run, data="holdout/")["macro_f1"]                                 # doctest: +SKIP
    >>> graft.export(run, format="onnx")                                                 # doctest: +SKIP
    >>> graft.check("my_images/").warnings                                               # doctest: +SKIP
    >>> graft.resume(run.path, epochs=10)                                                # doctest: +SKIP

Keyword arguments are the `graft train` flag names with underscores (`epochs`, `batch_size`, `lr`,
`img_size`, `val`, `val_split`, `out`, `seed`, `device`, `pretrained`, `num_workers`, `accum_steps`, `amp`,
`weights`, `quiet`, `opt`, `sched`, `weight_decay`, `warmup_epochs`, `smoothing`, `path_column`, `label_column`,
`task`, `single_label`, `modality`, `label_columns`, `label_separator`, `regression_loss`; the table is
`graft.config.ALIASES`) or any dotted config key, e.g.
`**{"optim.weight_decay": 0.05}`; a dict value for a section sets several keys, e.g.
`**{"data.augment": {"hflip": 0.0}}`. Each function prints nothing the command would not (`check` nothing
at all unless `verbose=True`) and raises `graft.errors.GraftError` where the command prints `error: ...`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console

from graft.config import resolve_config
from graft.data.check import DataReport, print_report
from graft.data.in_memory import as_data_path
from graft.errors import GraftError
from graft.monitoring.console import make_console
from graft.predict.images import Predictor
from graft.predict.load import load_predictor
from graft.workflow.train import Run, run_training


def train(
    data: Any = None,
    model: str | Path | None = None,
    *,
    config: str | Path | None = None,
    console: Console | None = None,
    **overrides: Any,
) -> Run:
    """Fine-tune `model` on `data` and return the finished `Run` (checkpoints, metrics, bundle on disk).
    `data`: a folder or CSV path, a pandas DataFrame (a path or text column and a label column), or a list
    of (path or text, label) pairs (data/in_memory.py); `model`: a name or a model/bundle folder."""
    if overrides.pop("single_label", False):  # as --single-label: task="single-label"
        overrides["task"] = "single-label"
    data, model = _data_argument(data, overrides), _model_argument(model)
    named = {key: value for key, value in (("data", data), ("model", model)) if value is not None}
    cfg = resolve_config(config, {**named, **overrides})
    return run_training(cfg, console)


def load(path: str | Path | Run, device: str = "auto", backend: str = "torch") -> Predictor:
    """A predictor for a run directory or a bundle folder (`backend="onnx"`: its ONNX export on
    onnxruntime, or a .onnx file); every one has `.modality` ("image", "text"), `.task` ("single-label",
    "multi-label", "regression"), `predict(inputs, top_k=1, batch_size=32)` (per input: the top classes; the
    labels above their thresholds with each label's sigmoid probability; or the number) and
    `predict_proba(inputs, batch_size=32)` (an (N, C) array, columns in `.classes` order: softmax, or a
    sigmoid per label; a regression model raises GraftError). Images are paths, folders, PIL images, numpy
    arrays or torch tensors; texts are strings."""
    return load_predictor(_path(path), backend=backend, device=device)


def evaluate(
    run_or_bundle: str | Path | Run,
    data: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """`graft eval`: the bundle's model on labelled data; writes the report folder and returns its metrics
    (metrics.json as `graft eval --json` prints it: accuracy, top_k_accuracy, macro_f1, weighted_f1, ece,
    loss, per_class, confusion_matrix, most_confused, ...).

    `data`: a folder or CSV as `graft train` takes it (its test split if it has one, else its val split,
    else all of it); default the run's validation split. `out`: the report folder (default RUN/report, or
    RUN/report-DATA with `data`). Problems with the data (skipped files, ...) are Python warnings.
    """
    from graft.data.images import default_num_workers
    from graft.evaluation.evaluate import evaluate as run_evaluation

    workers = default_num_workers() if num_workers is None else num_workers
    result = run_evaluation(
        _path(run_or_bundle), data, out, device=device, batch_size=batch_size, num_workers=workers
    )
    for warning in result.data.warnings:
        warnings.warn(warning, stacklevel=2)
    return json.loads((result.out / "metrics.json").read_text())


def export(run_or_bundle: str | Path | Run, format: str = "onnx", out: str | Path | None = None) -> Path:
    """`graft export`: the bundle's model as onnx, pt2, torchscript or safetensors, verified against
    PyTorch before it is kept. Returns the file (default inside the bundle: model.onnx, ...); the sidecar
    FILE.json beside it holds the input, preprocessing and classes. `graft.load(run, backend="onnx")` serves
    the ONNX export without torch."""
    from graft.exporting.formats import export as export_model

    return export_model(_path(run_or_bundle), format.lower(), out).path


def check(
    data: Any,
    *,
    labels: bool = False,
    folds: int | None = None,
    fix: str | None = None,
    out: str | Path | None = None,
    cleaned: str | Path | None = None,
    verbose: bool = False,
    **overrides: Any,
) -> DataReport:
    """`graft check`: read every sample of `data` once and report (counts, sizes, unreadable files,
    imbalance, train/val leaks, warnings), changing nothing of the user's. Keyword arguments are the command's
    flags: `val`, `val_split`, `seed`, `task` (auto, single-label, multi-label, regression), `single_label`,
    `modality`, `label_columns`, `label_separator`, `text_column`, `label_column`, `text_pair_column`,
    `strict`, `dedupe`, `model`, `device` (or dotted config keys). Raises GraftError where `graft check` exits
    2: data that training cannot use (with `strict=True`: unreadable files). `report.warnings` also holds the
    warnings of finding the data; `report.lines()` is the summary `graft check` prints, `verbose=True` prints it.

    `labels=True` (`--labels`, needs cleanlab): the labels that look wrong, as `report.label_issues`
    (`.flagged`, `.quality`, `.suggested` per sample, train then val; `.summary()`; `.files`: label_issues.csv
    and label_issues.html in `out`, default runs/check-NAME), from `folds` (5) out-of-fold heads.
    `fix="drop"|"relabel"` and `dedupe=True` write the cleaned CSV (`report.cleaned`, default
    DATA.cleaned.csv beside the data, or `cleaned`) that `graft.train` takes as it is.

        >>> report = graft.check("pets/", labels=True, fix="drop")                    # doctest: +SKIP
        >>> report.label_issues.summary()["flagged"], graft.train(report.cleaned)     # doctest: +SKIP
    """
    from graft.data.label_issues import print_issues
    from graft.workflow.check import run_check

    if overrides.pop("single_label", False):
        overrides["task"] = "single-label"
    cfg = resolve_config(None, {"data": _data_argument(data, overrides), **overrides})
    checked = run_check(cfg, labels=labels, folds=folds, fix=fix, out=None if out is None else Path(out),
                        cleaned=None if cleaned is None else Path(cleaned))  # fmt: skip
    report = checked.report
    report.warnings = [*checked.spec.warnings, *report.warnings]
    if verbose:
        console = make_console()
        print_report(console, checked.spec, report, report.warnings)
        if report.label_issues is not None:
            print_issues(console, report.label_issues)
    return report


def resume(run_dir: str | Path | Run, *, console: Console | None = None, **changes: Any) -> Run:
    """`graft resume`: continue a run from its newest intact checkpoint (mid-epoch too) and return the
    finished `Run`, the run that never stopped. Only `epochs`, `patience`, `min_delta`, `device`, `amp`,
    `num_workers`, `quiet`, logging and checkpoint keeping may change, e.g. `resume(run, epochs=20)`;
    anything else is a GraftError naming the field."""
    from graft.workflow.resume import resume_run

    return resume_run(_path(run_dir), changes, console)


def _data_argument(data: Any, overrides: dict[str, Any]) -> Any:
    columns = {k: overrides.get(k, overrides.get(f"data.{k}")) for k in ("path_column", "text_column")}
    return as_data_path(data, columns["path_column"] or "path", columns["text_column"] or "text")


def _model_argument(model: Any) -> Any:
    if model is None or isinstance(model, (str, os.PathLike)):
        return model
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise GraftError(
        f"model: got a {kind}; graft.train takes a model name (timm, tv:NAME, a Hugging Face encoder) or a "
        "model or bundle folder (an nn.Module object is not supported yet: save its weights and pass "
        "weights=FILE with its timm or tv: architecture name)"
    )


def _path(target: str | Path | Run) -> str | Path:
    return target.path if isinstance(target, Run) else target
