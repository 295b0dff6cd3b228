"""The tasks' names and the other spellings accepted for them (what each task does: graft/tasks/)."""

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
