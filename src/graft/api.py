"""The Python API; the CLI is a thin shell over these functions.

    >>> run = graft.train("my_images/", model="efficientnet_lite0", epochs=5, lr=3e-4)   # doctest: +SKIP
    >>> run.best_metric, run.path, run.metrics["accuracy"]                               # doctest: +SKIP
    >>> graft.load(run.path).predict(["photo.jpg"], top_k=3)                             # doctest: +SKIP
    >>> graft.evaluate(run, data="holdout/")["macro_f1"]                                 # doctest: +SKIP
    >>> graft.export(run, format="onnx")                                                 # doctest: +SKIP
    >>> graft.check("my_images/").warnings                                               # doctest: +SKIP
    >>> graft.resume(run.path, epochs=10)                                                # doctest: +SKIP
    >>> graft.train("my_images/", model=my_net)   # an nn.Module object: see train()     # doctest: +SKIP

Keyword arguments are the `graft train` flag names with underscores (`epochs`, `batch_size`, `lr`,
`img_size`, `val`, `val_split`, `out`, `seed`, `device`, `pretrained`, `num_workers`, `accum_steps`, `amp`,
`weights`, `quiet`, `opt`, `sched`, `weight_decay`, `warmup_epochs`, `smoothing`, `path_column`, `label_column`,
`task`, `single_label`, `modality`, `label_columns`, `label_separator`, `regression_loss`; the table is
`graft.config.ALIASES`) or any dotted config key, e.g.
`**{"optim.weight_decay": 0.05}`; a dict value for a section sets several keys, e.g.
`**{"data.augment": {"hflip": 0.0}}`. Each function prints nothing the command would not (`check` nothing
at all unless `verbose=True`) and raises `graft.errors.GraftError` where the command prints `error: ...`.
Steps that take seconds draw the command's progress bars, in a terminal and in a Jupyter notebook
(graft/progress.py); `quiet=True` draws none (`train`'s `quiet`: the per-epoch lines only).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from graft.config import resolve_config
from graft.data.check import DataReport, print_report
from graft.data.in_memory import as_data_path, is_path, naming_objects, options_of, written_as
from graft.monitoring.console import make_console
from graft.predict.load import load_predictor
from graft.progress import progress_to

if TYPE_CHECKING:  # both import torch: graft.load(..., backend="onnx") must not (predict/onnx.py)
    from graft.predict.images import Predictor
    from graft.workflow.train import Run


def train(
    data: Any = None,
    model: Any = None,
    *,
    config: str | Path | None = None,
    console: Console | None = None,
    **overrides: Any,
) -> Run:
    """Fine-tune `model` on `data` and return the finished `Run` (checkpoints, metrics, bundle on disk).
    `data` (and `val`): a folder or CSV path, a pandas DataFrame (a path or text column and a label column),
    a list of (path or text, label) pairs, a map-style torch Dataset of (image or text, label), or a Hugging
    Face `datasets.Dataset`/`DatasetDict` (data/in_memory.py).

    A Dataset object is read once, in index order, now; images held only in memory are written as files
    into the cache (`$GRAFT_CACHE_DIR`, else `$XDG_CACHE_HOME/graft`, else ~/.cache/graft: datasets/),
    once per content. Its items must be un-normalized and un-augmented: graft applies the model's own
    normalization and augmentations. Resume, eval and the report read those files (split.csv), so the
    object is not needed again.

    `model`: a name, a model/bundle folder, or an `nn.Module` object, whose current weights are the starting
    weights:

    - a timm model (`timm.create_model(...)`): trained as its architecture name (config.yaml's model.name,
      with model.module naming the class), head from `reset_classifier`, its own preprocessing; the bundle
      is timm's, and `graft.resume(run)` needs no object;
    - a torchvision classification model: `tv:NAME` when exactly one builder makes the same model;
    - a transformers `PreTrainedModel` (encoder or sequence classifier): built from it as from its folder,
      with the tokenizer of the folder or hub name it was loaded from; the bundle is transformers';
    - any other module: `module:pkg.mod:ClassName`. The head is its `reset_classifier(N)` if it has one,
      else its last `nn.Linear`, replaced for the data's classes; ImageNet mean/std at `img_size` (224)
      unless it carries a timm `pretrained_cfg`; layer groups from its module tree. Resume, load, evaluate
      and export it with an object of that architecture again: `graft.resume(run, model=Net())`,
      `graft.load(run, model=Net())`, `graft.evaluate(run, model=Net())`, `graft.export(run, model=Net())`
      (checked tensor by tensor; the CLI says how in one line). The bundle is its state_dict (safetensors)
      and graft.json's `module`; graft never imports or pickles the class.

    The object is never changed: graft trains one `copy.deepcopy` of it (a transformers object is only
    read, by `save_pretrained` into a temporary folder, and loaded once from there), so peak memory is the
    object plus one copy. With an object, `weights`, `drop_rate` and `pretrained=False` do not apply.

        >>> net = timm.create_model("resnet18", pretrained=True)                    # doctest: +SKIP
        >>> run = graft.train("my_images/", model=net, epochs=5)                     # doctest: +SKIP
    """
    if overrides.pop("single_label", False):  # as --single-label: task="single-label"
        overrides["task"] = "single-label"
    model, given = _model_argument(model)  # first: a wrong model= fails in a second, before a dataset's read
    with progress_to(console):  # a dataset object's read draws where the run's steps will
        data, written = _data_argument(data, overrides, config)
    if given is not None:  # what config.yaml records: the resolved name, and that it came from an object
        model, overrides = given.name, {**overrides, "model.module": given.class_path}
    named = {key: value for key, value in (("data", data), ("model", model)) if value is not None}
    cfg = resolve_config(config, {**named, **overrides})
    from graft.workflow.train import run_training

    with naming_objects(written):
        return run_training(cfg, console, given=given)


def load(
    path: str | Path | Run, device: str = "auto", backend: str = "torch", model: Any = None
) -> Predictor:
    """A predictor for a run directory or a bundle folder (`backend="onnx"`: its ONNX export on
    onnxruntime, or a .onnx file); every one has `.modality` ("image", "text"), `.task` ("single-label",
    "multi-label", "regression"), `predict(inputs, top_k=1, batch_size=32)` (per input: the top classes; the
    labels above their thresholds with each label's sigmoid probability; or the number) and
    `predict_proba(inputs, batch_size=32)` (an (N, C) array, columns in `.classes` order: softmax, or a
    sigmoid per label; a regression model raises GraftError). Images are paths, folders, PIL images, numpy
    arrays or torch tensors; texts are strings. `model`: for a bundle trained from a custom nn.Module, an
    object of that architecture (its weights are loaded into a copy of it; see `train`)."""
    return load_predictor(_path(path), backend=backend, device=device, model=model)


def evaluate(
    run_or_bundle: str | Path | Run,
    data: Any = None,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int | None = None,
    model: Any = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """`graft eval`: the bundle's model on labelled data; writes the report folder and returns its metrics
    (metrics.json as `graft eval --json` prints it: accuracy, top_k_accuracy, macro_f1, weighted_f1, ece,
    loss, per_class, confusion_matrix, most_confused, ...).

    `data`: a folder or CSV as `graft train` takes it (its test split if it has one, else its val split,
    else all of it), or a data object `train` takes (a torch Dataset, a Hugging Face Dataset such as
    `ds["test"]`, a DataFrame, (path or text, label) pairs: all of it, read once as `train` reads it; a
    DatasetDict: its validation split);
    default the run's validation split. `out`: the report folder (default RUN/report, or RUN/report-DATA
    with `data`, RUN/report-data for an object). Problems with the data (skipped files, ...) are Python
    warnings.
    `model`: for a bundle trained from a custom nn.Module, an object of that architecture (see `train`).
    `quiet`: no progress bars.
    """
    from graft.data.images import default_num_workers
    from graft.evaluation.evaluate import evaluate as run_evaluation

    workers = default_num_workers() if num_workers is None else num_workers
    written: dict[str, str] = {}
    if not is_path(data):  # an object: the CSV train would write for it (data/in_memory.py), all of it
        with progress_to(None, quiet):
            found = as_data_path(data)
        data, written = found.path, written_as("data", data, found)
    with naming_objects(written):
        result = run_evaluation(
            _path(run_or_bundle),
            data,
            out,
            device=device,
            batch_size=batch_size,
            num_workers=workers,
            model=model,
            quiet=quiet,
        )
    for warning in result.data.warnings:
        warnings.warn(warning, stacklevel=2)
    return json.loads((result.out / "metrics.json").read_text())


def export(
    run_or_bundle: str | Path | Run,
    format: str = "onnx",
    out: str | Path | None = None,
    model: Any = None,
    quiet: bool = False,
) -> Path:
    """`graft export`: the bundle's model as onnx, pt2, torchscript or safetensors, verified against
    PyTorch before it is kept. Returns the file (default inside the bundle: model.onnx, ...); the sidecar
    FILE.json beside it holds the input, preprocessing and classes. `graft.load(run, backend="onnx")` serves
    the ONNX export without torch (and without the object a custom nn.Module's bundle needs: `model`).
    `quiet`: no spinners while it traces and verifies."""
    from graft.exporting.formats import export as export_model

    return export_model(_path(run_or_bundle), format.lower(), out, model=model, quiet=quiet).path


def check(
    data: Any,
    *,
    labels: bool = False,
    folds: int | None = None,
    fix: str | None = None,
    out: str | Path | None = None,
    cleaned: str | Path | None = None,
    verbose: bool = False,
    quiet: bool = False,
    **overrides: Any,
) -> DataReport:
    """`graft check`: read every sample of `data` once and report (counts, sizes, unreadable files,
    imbalance, train/val leaks, warnings), changing nothing of the user's (a Dataset object's in-memory
    images are written to the cache first, as `train` writes them). `data` is what `train` takes. Keyword
    arguments are the command's flags: `val`, `val_split`, `seed`, `task` (auto, single-label, multi-label, regression), `single_label`,
    `modality`, `label_columns`, `label_separator`, `text_column`, `label_column`, `text_pair_column`,
    `strict`, `dedupe`, `model`, `device` (or dotted config keys). Raises GraftError where `graft check` exits
    2: data that training cannot use (with `strict=True`: unreadable files). `report.warnings` also holds the
    warnings of finding the data; `report.lines()` is the summary `graft check` prints, `verbose=True` prints it; `quiet=True`: no progress bars.

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
    with progress_to(None, quiet):  # a Dataset object's read draws a bar too
        path, written = _data_argument(data, overrides)
        cfg = resolve_config(None, {"data": path, **overrides})
        with naming_objects(written):
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


def resume(
    run_dir: str | Path | Run, *, model: Any = None, console: Console | None = None, **changes: Any
) -> Run:
    """`graft resume`: continue a run from its newest intact checkpoint (mid-epoch too) and return the
    finished `Run`, the run that never stopped. Only `epochs`, `patience`, `min_delta`, `device`, `amp`,
    `num_workers`, `quiet`, logging and checkpoint keeping may change, e.g. `resume(run, epochs=20)`;
    anything else is a GraftError naming the field. `model`: for a run trained from a custom nn.Module, an
    object of that architecture (checked against the checkpoint's tensors; see `train`)."""
    from graft.workflow.resume import resume_run

    if is_path(model):  # a name is a change, refused as one
        changes, model = ({**changes, "model": model} if model is not None else changes), None
    return resume_run(_path(run_dir), changes, console, model=model)


def _data_argument(
    data: Any, overrides: dict[str, Any], config: str | Path | None = None
) -> tuple[Any, dict[str, str]]:
    """(`data` as the path the config holds, {CSV written: which object}): a path as it is, an object written
    to a CSV (data/in_memory.py) with the settings that the config file and `overrides` give (its columns,
    the cache, quiet); so is a `val` object. The task an object's labels say goes into `overrides` unless
    the run names one."""
    val_key = next((key for key in ("val", "data.val") if key in overrides), None)
    if is_path(data) and (val_key is None or is_path(overrides[val_key])):
        return data, {}
    val = overrides.pop(val_key) if val_key is not None and not is_path(overrides[val_key]) else None
    cfg = resolve_config(config, overrides)
    options = options_of(cfg)
    found = as_data_path(data, options)
    written = written_as("data", data, found)
    if val is not None:
        found_val = as_data_path(val, options)
        overrides[val_key] = found_val.path
        written |= written_as("val", val, found_val)
    if found.task is not None and cfg.data.task == "auto":
        overrides["data.task" if "data.task" in overrides else "task"] = found.task
    return found.path, written


def _model_argument(model: Any) -> tuple[Any, Any]:
    """(name or folder, None) or (None, the resolved nn.Module object: models/module_input.py)."""
    if is_path(model):
        return model, None
    from graft.models.module_input import model_object  # torch: only for an object, which needs it anyway

    return None, model_object(model)


def _path(target: str | Path | Run) -> str | Path:
    train = sys.modules.get("graft.workflow.train")  # a Run exists only where its module was imported
    return target.path if train is not None and isinstance(target, train.Run) else target
