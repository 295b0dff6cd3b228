"""What the run folder says about how the model came to be: curves, config, strategy, data.

Everything is read from the files `graft train` wrote (metrics.csv, config.yaml, advice.json, split.csv);
each part is optional, so a bundle copied away from its run still gets a report, only a shorter one.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from graft.errors import GraftError
from graft.runs.folder import RunFolder


@dataclass
class RunContext:
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv, one row per epoch
    config_yaml: str | None = None
    strategy: str | None = None  # the resolved strategy name
    stages: list[str] = field(default_factory=list)  # one line per stage: from which epoch what trains
    stages_summary: str | None = None  # strategies.stages.describe's one line
    advice: dict[str, Any] | None = None  # advice.json (--strategy auto): what was measured and chosen
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> images

    @property
    def strategy_line(self) -> str | None:
        """'gradual: head only, then ...' (describe's line already starts with the strategy's name)."""
        return self.stages_summary or self.strategy


def read_run_context(run: Path | None, model: nn.Module, classes: list[str]) -> RunContext:
    context = RunContext()
    if run is None:
        return context
    folder = RunFolder(run)
    if folder.metrics.is_file():
        with folder.metrics.open(newline="") as f:
            context.history = [
                {k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)
            ]
    if folder.config.is_file():
        context.config_yaml = folder.config.read_text()
        config = yaml.safe_load(context.config_yaml) or {}
        context.strategy = (config.get("strategy") or {}).get("name")
        solved = any(row.get("epoch") == 0 for row in context.history)  # the probe is epoch 0
        context.stages_summary, context.stages = _stages(config, model, solved)
    if folder.advice.is_file():
        context.advice = json.loads(folder.advice.read_text())
    if folder.split.is_file():
        with folder.split.open(newline="", encoding="utf-8") as f:
            counted = Counter((row.get("split", ""), row.get("label", "")) for row in csv.DictReader(f))
        for split in ("train", "val"):
            context.split_counts[split] = {name: counted.get((split, name), 0) for name in classes}
    return context


def _stages(config: dict[str, Any], model: nn.Module, head_solved: bool) -> tuple[str | None, list[str]]:
    """The run's stages, recomputed the way training planned them (a pure function of the config and the
    model's layer groups), as a summary line and one line per stage."""
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
    lines = []
    for stage in stages:
        trained = ", ".join(
            f"{groups[g].name} (lr x{scale:.3g})" for g, scale in zip(stage.trainable, stage.lr_scales)
        )
        lines.append(f"from epoch {stage.start_epoch + 1}: {trained}")
    return describe(cfg.strategy.name, stages, groups), lines
