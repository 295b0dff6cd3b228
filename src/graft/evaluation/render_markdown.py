"""report/report.md: the same sections as index.html, for a README, a pull request or a terminal; the
figures are the PNG files beside it."""

from __future__ import annotations

import json

from graft.evaluation.gallery import sample_markdown
from graft.evaluation.report import SECTIONS, Report, calibration_note, pct


def render_markdown(r: Report, figures: dict[str, bytes]) -> str:
    m, ctx = r.metrics, r.context
    header, counts = r.count_rows()
    gallery = [
        [sample_markdown(e.item), e.true, e.predicted, f"{e.p_predicted:.1%}", f"{e.loss:.3f}"]
        for e in r.gallery
    ]
    name, _, rest = (ctx.strategy_line or "").partition(":")
    strategy = f"**{name}**{':' if rest else ''}{rest}" if name else ""
    sections = {
        "summary": [
            table([k for k, _ in r.headline()], [[v for _, v in r.headline()]]),
            *(f"> {n}" for n in r.notes),
        ],
        "curves": [
            "![loss and accuracy per epoch](curves.png)" if "curves.png" in figures else "Not available."
        ],
        "confusion": ["![confusion matrix](confusion.png)"],
        "confused-pairs": [table(["true", "predicted as", "count", "share of true"], r.pair_rows())]
        if m["most_confused"]
        else ["No mistakes."],
        "per-class": [table(["class", "precision", "recall", "F1", "support"], r.per_class_rows())],
        "calibration": [
            f"ECE ({m['ece_bins']} bins): {pct(m['ece'])}",
            *(["", calibration_note(m)] if m.get("calibration") else []),
            "",
            "![reliability diagram](reliability.png)",
        ],
        "gallery": [table(["sample", "true", "predicted", "p(predicted)", "loss"], gallery)],
        "data": [f"Evaluated: {r.about.get('data', '')}.", "", table(header, counts)],
        "strategy": [strategy or "Not available.", *(f"- {s}" for s in ctx.stages)]
        + (["", "```json", json.dumps(ctx.advice, indent=2), "```"] if ctx.advice else []),
        "config": ["```yaml", ctx.config_yaml.rstrip(), "```"] if ctx.config_yaml else ["Not available."],
    }
    assert sections.keys() == SECTIONS.keys(), "every section of the report needs its Markdown"
    lines = [f"# {r.title}", "", *(f"- {k}: {v}" for k, v in r.about.items()), ""]
    for key, title in SECTIONS.items():
        lines += [f"## {title}", "", *sections[key], ""]
    return "\n".join(lines)


def table(header: list[str], rows: list[list[str]]) -> str:
    escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    )
