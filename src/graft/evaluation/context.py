"""What the run folder says about how the model came to be: curves, config, strategy, data.

Everything is read from the files `graft train` wrote (metrics.csv, config.yaml, advice.json, stages.json,
split.csv), through their owners runs/records.py and runs/split.py; each part is optional, so a bundle
copied away from its run still gets a report, only a shorter one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from graft.data.label_kind import split_labels
from graft.errors import GraftError
from graft.runs.records import config_text, read_advice, read_config, read_metrics, read_stages, stage_line
from graft.runs.split import read_split


@dataclass
class RunContext:
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv, one row per epoch
    config_yaml: str | None = None
    strategy: str | None = None  # the resolved strategy name
    stages: list[str] = field(default_factory=list)  # one line per stage: from which epoch what trains
    stages_summary: str | None = None  # strategies.stages.describe's one line
    advice: dict[str, Any] | None = None  # advice.json (--strategy auto): what was measured and chosen
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> images
    split_values: dict[str, list[float]] = field(default_factory=dict)  # regression: split -> its targets

    @property
    def strategy_line(self) -> str | None:
        """'gradual: head only, then ...' (describe's line already starts with the strategy's name)."""
        return self.stages_summary or self.strategy


def read_run_context(
    run: Path | None, model: nn.Module, classes: list[str], task: str = "single-label", separator: str = ";"
) -> RunContext:
    """`task` and `separator`: how split.csv's label cells read (a multi-label cell counts once per label)."""
    context = RunContext()
    if run is None:
        return context
    context.history = [
        {k: float(v) for k, v in row.items() if v not in ("", None)} for row in read_metrics(run)
    ]
    context.config_yaml = config_text(run)
    config = read_config(run)
    context.strategy = (config.get("strategy") or {}).get("name")
    recorded = read_stages(run)
    if recorded is not None:  # what training planned (stages.json)
        context.strategy = context.strategy or recorded.strategy
        context.stages_summary, context.stages = recorded.summary, recorded.lines
    elif config:  # a run from before stages.json: planned again from its config
        solved = any(row.get("epoch") == 0 for row in context.history)  # the probe is epoch 0
        context.stages_summary, context.stages = _stages(config, model, solved)
    context.advice = read_advice(run)
    try:
        rows = read_split(run)
    except GraftError:  # no split.csv, or a damaged one: no counts
        rows = None
    if rows is not None and task == "regression":
        for split in ("train", "val"):
            context.split_values[split] = [
                v for r in rows if r.split == split and (v := _number(r.label)) is not None
            ]
            context.split_counts[split] = {classes[0]: len(context.split_values[split])}
    elif rows is not None:
        multi = task == "multi-label"
        counted = Counter(
            (r.split, name)
            for r in rows
            for name in (split_labels(r.label, separator) if multi else (r.label,))
        )
        for split in ("train", "val"):
            context.split_counts[split] = {name: counted.get((split, name), 0) for name in classes}
    return context


def _stages(config: dict[str, Any], model: nn.Module, head_solved: bool) -> tuple[str | None, list[str]]:
    """The stages of a run from before stages.json, planned again from its config and the model's layer
    groups (as training planned them, but for head_solved, which is judged from metrics.csv here)."""
    from pydantic import ValidationError

    from graft.config import Config
    from graft.strategies.groups import layer_groups
    from graft.strategies.stages import describe, stages_from_config

    try:
        cfg = Config.model_validate(config)
        groups = layer_groups(model)
        stages = stages_from_config(cfg, len(groups), head_solved)
    except (
        ValidationError,
        KeyError,
        TypeError,
        ValueError,
        AssertionError,
        GraftError,
    ):  # older or hand-edited
        return None, []
    lines = [
        stage_line(s.start_epoch, [(groups[g].name, scale) for g, scale in zip(s.trainable, s.lr_scales)])
        for s in stages
    ]
    return describe(cfg.strategy.name, stages, groups), lines


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None
