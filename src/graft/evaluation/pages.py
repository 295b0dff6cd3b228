"""The report folder on disk: one `Report` rendered twice (index.html, report.md) beside its figures and
metrics.json, written into a staging folder and swapped in whole."""

from __future__ import annotations

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
    return replace_folder(tmp, out) / "index.html"
