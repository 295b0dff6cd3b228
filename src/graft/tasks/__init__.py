"""The task concept (single-label, multi-label, regression): see tasks/base.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graft.tasks.base import (
    TASK_NAMES,
    Decoded,
    Task,
    format_metric,
    format_metrics,
    task_name,
)
from graft.tasks.multi import MultiLabel, tune_thresholds
from graft.tasks.regression import LOSSES, Regression
from graft.tasks.single import SingleLabel

__all__ = ["LOSSES", "TASK_NAMES", "Decoded", "MultiLabel", "Regression", "SingleLabel", "Task",
           "create_task", "format_metric", "format_metrics", "from_meta", "task_name", "tune_thresholds"]  # fmt: skip


def create_task(name: str, classes: Sequence[str] = (), train_labels: Sequence = (), **options: Any) -> Task:
    """The task `name` for these classes, fit to the training labels where it needs them (regression's
    scaling). Unknown names: ValueError listing the choices."""
    name = task_name(name)
    if name == "multi-label":
        return MultiLabel(num_labels=len(classes))
    if name == "regression":
        return Regression.fit(
            train_labels, classes[0] if classes else "target", options.get("loss", Regression.loss_name)
        )
    return SingleLabel()


def from_meta(meta: dict[str, Any]) -> Task:
    """The task a bundle's graft.json describes, decoding the bundle's own outputs (bundles written before
    tasks existed are single-label)."""
    described = meta.get("task_spec") or {}
    name = described.get("name", "single-label")
    if name == "multi-label":
        return MultiLabel(num_labels=len(meta.get("classes", [])), thresholds=described.get("thresholds"))
    if name == "regression":  # the bundle's head outputs the number: no scaling left to undo
        return Regression(0.0, 1.0, described.get("target", "target"))
    return SingleLabel()
