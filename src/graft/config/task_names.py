"""The tasks' names and the other spellings accepted for them, and how their metrics are written (what each
task does: graft/tasks/). No torch here: `graft runs` and the console import it."""

from __future__ import annotations

TASK_NAMES = ("single-label", "multi-label", "regression")
# What users and other tools call them (timm/fastai/AutoGluon/HF spellings), to the one graft writes.
ALIASES = {
    "single": "single-label", "singlelabel": "single-label", "single_label": "single-label",
    "classification": "single-label", "multiclass": "single-label", "single_label_classification": "single-label",
    "multi": "multi-label", "multilabel": "multi-label", "multi_label": "multi-label",
    "multi_label_classification": "multi-label",
    "regression": "regression", "regress": "regression",
}  # fmt: skip


def task_name(value: str) -> str:
    """A task's canonical name from any accepted spelling; ValueError listing the choices otherwise."""
    key = value.strip().lower()
    name = key if key in TASK_NAMES else ALIASES.get(key.replace("-", "_"), ALIASES.get(key))
    if name is None:
        raise ValueError(f"unknown task {value!r}; choose auto, {', '.join(TASK_NAMES)}")
    return name


PERCENT_METRICS = frozenset({"val_acc", "val_map", "val_f1", "val_macro_f1", "val_subset_acc"})


# The metrics a console line shows, in this order, where the record has them (each task fills its own).
SHOWN_METRICS = ("val_loss", "val_acc", "val_map", "val_f1", "val_mae", "val_rmse", "val_r2")


def format_metric(metric: str, value: float) -> str:
    """One metric's value as the console and the report write it: percentages for accuracy-like scores."""
    return (
        f"{value:.2%}"
        if metric in PERCENT_METRICS
        else f"{value:.4f}"
        if metric == "val_loss"
        else f"{value:.4g}"
    )


def format_metrics(record: dict[str, float], sep: str = "  ") -> str:
    """'val_loss 0.2140  val_acc 93.50%' (single-label), '... val_map 81.20%  val_f1 70.10%', '... val_mae 6.21'."""
    return sep.join(f"{m} {format_metric(m, record[m])}" for m in SHOWN_METRICS if m in record)
