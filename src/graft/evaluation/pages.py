"""The report folder on disk: one `Report` rendered twice (index.html, report.md) beside its figures and
metrics.json, written into a staging folder and swapped in whole."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from graft.evaluation.render_html import render_html
from graft.evaluation.render_markdown import render_markdown
from graft.evaluation.report import Report
from graft.files import json_ready, replace_folder, staging_folder


def write_report(out: Path, report: Report) -> Path:
    """Write `out/` (index.html, report.md, metrics.json, figures); returns index.html's path."""
    tmp = staging_folder(out)
    figures = report.figures()
    for name, data in figures.items():
        (tmp / name).write_bytes(data)
    (tmp / "metrics.json").write_text(
        json.dumps(json_ready({"about": report.about, **report.metrics}), indent=2)
    )
    (tmp / "index.html").write_text(render_html(report, figures))
    (tmp / "report.md").write_text(render_markdown(report, figures))
    if report.predictions is not None:
        write_predictions(tmp / "predictions.csv", report)
    return replace_folder(tmp, out) / "index.html"


def write_predictions(path: Path, report: Report) -> None:
    """predictions.csv: one row per evaluated sample, in the data's order (evaluate.py `sample_columns`
    first, then the task's: multi-label true, predicted, p_LABEL...; regression true, predicted, error)."""
    rows = report.predictions
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
