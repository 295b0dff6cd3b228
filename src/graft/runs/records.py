"""What a run recorded about itself, read (and the JSON records written) here only:

    metrics.csv   `read_metrics`: one row per epoch record, as the CSV sink wrote it (strings)
    config.yaml   `read_config` / `config_text`: the resolved config, as plain YAML (no validation, so
                  runs written by older graft versions still read)
    advice.json   `write_advice` / `add_to_advice` / `read_advice`: how the strategy was chosen
    stages.json   `write_stages` / `read_stages`: the stages training planned, as the report shows them

Every reader tolerates a missing or damaged file (an empty result, or None): `graft runs` must list a run
whose files a power cut tore, and the report is shorter for what is missing, never wrong. Callers convert
(the report turns metrics into floats). Standard library and YAML only, no torch.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graft.files import json_ready, write_atomic
from graft.runs.folder import RunFolder


def read_metrics(run: Path) -> list[dict[str, str]]:
    """metrics.csv's rows that have an epoch, as strings ("" where a column was not logged that epoch);
    [] when the file is missing or unreadable."""
    try:
        with RunFolder(run).metrics.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    # restkey None: the extra cells of a row longer than the header, which name no metric
    return [{k: v for k, v in row.items() if k is not None} for row in rows if row.get("epoch")]


def config_text(run: Path) -> str | None:
    """config.yaml as written, or None when it is missing or unreadable."""
    try:
        return RunFolder(run).config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def read_config(run: Path) -> dict[str, Any]:
    """config.yaml as a plain mapping; {} when it is missing, not YAML, or not a mapping."""
    text = config_text(run)
    try:
        data = yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def write_advice(run: Path, measured: dict[str, Any]) -> None:
    write_atomic(RunFolder(run).advice, json.dumps(json_ready(measured), indent=2, default=str))


def add_to_advice(run: Path, **fields: Any) -> None:
    """Add `fields` to advice.json; nothing when the run has none (its strategy was not measured)."""
    measured = read_advice(run)
    if measured is not None:
        write_advice(run, {**measured, **fields})


def read_advice(run: Path) -> dict[str, Any] | None:
    """advice.json, or None when it is missing or damaged."""
    return _read_json(RunFolder(run).advice)


@dataclass(frozen=True)
class RecordedStages:
    strategy: str  # the resolved strategy name
    summary: str  # strategies.stages.describe's one line
    lines: list[str]  # one per stage: "from epoch N: group (lr xS), ..."


def stage_line(start_epoch: int, trained: Iterable[tuple[str, float]]) -> str:
    """'from epoch 3: blocks.5 (lr x0.36), head (lr x1)': `start_epoch` counts from 0, the line from 1."""
    return f"from epoch {start_epoch + 1}: " + ", ".join(
        f"{name} (lr x{scale:.3g})" for name, scale in trained
    )


def write_stages(run: Path, stages: RecordedStages) -> None:
    write_atomic(
        RunFolder(run).stages,
        json.dumps({"strategy": stages.strategy, "summary": stages.summary, "lines": stages.lines}, indent=2),
    )


def read_stages(run: Path) -> RecordedStages | None:
    """stages.json, or None when it is missing or damaged (a run written before graft recorded it)."""
    data = _read_json(RunFolder(run).stages)
    try:
        return RecordedStages(str(data["strategy"]), str(data["summary"]), [str(x) for x in data["lines"]])
    except (KeyError, TypeError):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None
