"""report/report.md: the same sections as index.html, for a README, a pull request or a terminal; the
figures are the PNG files beside it."""

from __future__ import annotations

import json

from graft.evaluation.gallery import sample_markdown
from graft.evaluation.report import Report, calibration_note, pct


def render_markdown(r: Report, figures: dict[str, bytes]) -> str:
    if r.task != "single-label":
        return _render_task(r, figures)
    m = r.metrics
    gallery = [
        [sample_markdown(e.item), e.true, e.predicted, f"{e.p_predicted:.1%}", f"{e.loss:.3f}"]
        for e in r.gallery
    ]
    sections = _common(r, figures) | {
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
    }
    return _page(r, sections)


def _common(r: Report, figures: dict[str, bytes]) -> dict[str, list[str]]:
    """The sections every task's report has: summary, curves, data, strategy, config."""
    ctx = r.context
    header, counts = r.count_rows()
    name, _, rest = (ctx.strategy_line or "").partition(":")
    strategy = f"**{name}**{':' if rest else ''}{rest}" if name else ""
    return {
        "summary": [
            table([k for k, _ in r.headline()], [[v for _, v in r.headline()]]),
            *(f"> {n}" for n in r.notes),
        ],
        "curves": [
            "![loss and accuracy per epoch](curves.png)" if "curves.png" in figures else "Not available."
        ],
        "data": [f"Evaluated: {r.about.get('data', '')}.", "", table(header, counts)],
        "strategy": [strategy or "Not available.", *(f"- {s}" for s in ctx.stages)]
        + (["", "```json", json.dumps(ctx.advice, indent=2), "```"] if ctx.advice else []),
        "config": ["```yaml", ctx.config_yaml.rstrip(), "```"] if ctx.config_yaml else ["Not available."],
    }


def _render_task(r: Report, figures: dict[str, bytes]) -> str:
    """Multi-label and regression pages."""
    worst = lambda entries: table(  # noqa: E731
        ["sample", "true", "predicted", "why"],
        [[sample_markdown(e.item), e.true, e.predicted, e.note] for e in entries],
    )
    sections = _common(r, figures)
    if r.task == "multi-label":
        by_label = []
        for label, entries in r.worst_by_label.items():
            by_label += [f"### {label}", "", worst(entries) if entries else "No mistakes on this label.", ""]
        sections |= {
            "per-label": [
                table(
                    ["label", "threshold", "precision", "recall", "F1", "AP", "support", "predicted"],
                    r.per_label_rows(),
                )
            ],
            "pr-curves": ["![precision-recall curve per label](pr_curves.png)"],
            "worst-per-label": by_label,
        }
    else:
        sections |= {
            "predicted-vs-true": ["![predicted against true](predicted_vs_true.png)"],
            "residuals": ["![residuals](residuals.png)", "", table(["residual", "value"], r.residual_rows())],
            "worst": [worst(r.gallery)],
        }
    return _page(r, sections)


def _page(r: Report, sections: dict[str, list[str]]) -> str:
    assert sections.keys() == r.sections.keys(), "every section of the report needs its Markdown"
    lines = [f"# {r.title}", "", *(f"- {k}: {v}" for k, v in r.about.items()), ""]
    for key, title in r.sections.items():
        lines += [f"## {title}", "", *sections[key], ""]
    return "\n".join(lines)


def table(header: list[str], rows: list[list[str]]) -> str:
    escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    )
