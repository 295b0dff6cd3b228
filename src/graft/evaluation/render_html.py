"""report/index.html: one self-contained page (inline CSS, figures and thumbnails as base64 PNG), so it
can be mailed, attached to a ticket or opened from a CI artifact with nothing else."""

from __future__ import annotations

from html import escape
from typing import Any

from graft.evaluation.gallery import png_uri, sample_html
from graft.evaluation.report import TASK_SECTIONS, Report, calibration_note, pct

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:32px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
nav{font-size:13px;margin:10px 0 0}nav a{margin-right:12px;color:#2f5fb3;text-decoration:none}
.about{color:#555;font-size:13px}.about b{color:#1d2330;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 14px;min-width:110px}
.card .v{font-size:22px;font-weight:600}.card .k{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #dde1e7;padding:4px 10px;text-align:left}th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img.fig{max-width:100%;background:#fff;border:1px solid #dde1e7;border-radius:6px}
.row{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}.row p{flex:1 1 280px;max-width:460px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.tile{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px;font-size:12px}
.tile img{width:128px;height:128px;object-fit:contain;image-rendering:pixelated;display:block;margin:0 auto 6px}
.wrong{color:#b3261e;font-weight:600}.right{color:#1e7b34;font-weight:600}
blockquote.text{margin:0 0 6px;font-style:italic}
pre{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px;overflow:auto;font-size:12px;max-height:480px}
.note{color:#8a5a00}
"""
NO_RUN = "<p>Not available: this bundle is not inside its run folder.</p>"


def render_html(r: Report, figures: dict[str, bytes]) -> str:
    sections = {
        "summary": _summary,
        "curves": _curves,
        "confusion": _confusion,
        "confused-pairs": _pairs,
        "per-class": _per_class,
        "calibration": _calibration,
        "gallery": _gallery,
        "data": _data,
        "strategy": _strategy,
        "config": _config,
        "per-label": _per_label,
        "pr-curves": _pr_curves,
        "worst-per-label": _worst_per_label,
        "predicted-vs-true": _predicted_vs_true,
        "residuals": _residuals,
        "worst": _worst,
    }
    assert sections.keys() == {k for s in TASK_SECTIONS.values() for k in s}, "every section needs its HTML"
    body = "".join(
        f'<section id="{key}"><h2>{title}</h2>{sections[key](r, figures)}</section>'
        for key, title in r.sections.items()
    )
    about = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in r.about.items())
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in r.sections.items())
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(r.title)}</title>'
        f"<style>{STYLE}</style></head><body><main><h1>{escape(r.title)}</h1>"
        f'<div class="about">{about}</div><nav>{nav}</nav>{body}</main></body></html>\n'
    )


def table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """Cells are plain text (escaped here); columns from `numeric_from` on are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i >= numeric_from else ''}>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(figures: dict[str, bytes], name: str, alt: str) -> str:
    return f'<img class="fig" src="{png_uri(figures[name])}" alt="{alt}">'


def _summary(r: Report, figures: dict[str, bytes]) -> str:
    cards = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for k, v in r.headline()
    )
    return f'<div class="cards">{cards}</div>' + "".join(f'<p class="note">{escape(n)}</p>' for n in r.notes)


def _curves(r: Report, figures: dict[str, bytes]) -> str:
    if "curves.png" not in figures:
        return NO_RUN
    return _figure(figures, "curves.png", "loss and accuracy per epoch") + (
        "<p>Per epoch, from metrics.csv. The dotted line marks the epoch in the bundle (the best checkpoint), "
        "which is what every other number on this page is about.</p>"
    )


def _confusion(r: Report, figures: dict[str, bytes]) -> str:
    return _figure(figures, "confusion.png", "confusion matrix") + (
        "<p>Rows: true class; columns: predicted. Numbers are counts; color is the share of the true class.</p>"
    )


def _pairs(r: Report, figures: dict[str, bytes]) -> str:
    rows = r.pair_rows()
    return (
        table(["true", "predicted as", "count", "share of true"], rows, 2) if rows else "<p>No mistakes.</p>"
    )


def _per_class(r: Report, figures: dict[str, bytes]) -> str:
    return table(["class", "precision", "recall", "F1", "support"], r.per_class_rows())


def _calibration(r: Report, figures: dict[str, bytes]) -> str:
    m = r.metrics
    return (
        f'<div class="row">{_figure(figures, "reliability.png", "reliability diagram")}'
        f"<p>Expected calibration error (ECE, {m['ece_bins']} equal-width confidence bins): <b>{pct(m['ece'])}</b>. "
        "It is the sample-weighted gap between the top-1 probability and the observed accuracy. Bars under the "
        "diagonal: the model is over-confident there; above it: under-confident.</p>"
        f"{'<p>' + escape(calibration_note(m)) + '</p>' if m.get('calibration') else ''}</div>"
    )


def _gallery(r: Report, figures: dict[str, bytes]) -> str:
    tiles = "".join(
        f'<div class="tile">{sample_html(e.item)}'
        f"<div>true <b>{escape(e.true)}</b> ({e.p_true:.1%})</div>"
        f'<div class="{"right" if e.correct else "wrong"}">predicted {escape(e.predicted)} ({e.p_predicted:.1%})</div>'
        f"<div>loss {e.loss:.3f}</div></div>"
        for e in r.gallery
    )
    return f'<div class="gallery">{tiles}</div>'


def _per_label(r: Report, figures: dict[str, bytes]) -> str:
    header = ["label", "threshold", "precision", "recall", "F1", "AP", "support", "predicted"]
    return table(header, r.per_label_rows()) + (
        "<p>A label is predicted when its probability reaches its threshold, tuned per label on the validation "
        "split for the best F1 and stored in the bundle. AP (average precision) is threshold-free; support: "
        "samples with the label; predicted: samples given it.</p>"
    )


def _pr_curves(r: Report, figures: dict[str, bytes]) -> str:
    return _figure(figures, "pr_curves.png", "precision-recall curve per label") + (
        "<p>Precision against recall as each label's threshold moves; the red dot is the tuned threshold.</p>"
    )


def _worst_per_label(r: Report, figures: dict[str, bytes]) -> str:
    parts = []
    for label, entries in r.worst_by_label.items():
        parts.append(f"<h3>{escape(label)}</h3>")
        parts.append(_tiles(entries) if entries else "<p>No mistakes on this label.</p>")
    return "".join(parts)


def _predicted_vs_true(r: Report, figures: dict[str, bytes]) -> str:
    m = r.metrics
    return (
        f'<div class="row">{_figure(figures, "predicted_vs_true.png", "predicted against true")}'
        f"<p>One dot per sample; on the dashed diagonal the prediction is exact. In {escape(m['target'])}'s "
        "units: the bundle outputs the number itself.</p></div>"
    )


def _residuals(r: Report, figures: dict[str, bytes]) -> str:
    return (
        _figure(figures, "residuals.png", "residuals")
        + "<p>Residual: predicted - true. A slope on the left means large values are under-predicted and "
        "small ones over-predicted (regression to the mean).</p>"
        + table(["residual", "value"], r.residual_rows())
    )


def _worst(r: Report, figures: dict[str, bytes]) -> str:
    return _tiles(r.gallery)


def _tiles(entries: list) -> str:
    """Worst samples of multi-label and regression (gallery.Worst) as tiles."""
    tiles = "".join(
        f'<div class="tile">{sample_html(e.item)}<div>true <b>{escape(e.true)}</b></div>'
        f'<div class="{"wrong" if e.wrong else "right"}">predicted {escape(e.predicted)}</div>'
        f"<div>{escape(e.note)}</div></div>"
        for e in entries
    )
    return f'<div class="gallery">{tiles}</div>'


def _data(r: Report, figures: dict[str, bytes]) -> str:
    header, rows = r.count_rows()
    return f"<p>Evaluated: {escape(r.about.get('data', ''))}.</p>" + table(header, rows)


def _strategy(r: Report, figures: dict[str, bytes]) -> str:
    ctx = r.context
    if not ctx.strategy:
        return NO_RUN
    name, _, rest = ctx.strategy_line.partition(":")
    parts = [f"<p><b>{escape(name)}</b>{':' if rest else ''}{escape(rest)}</p>"]
    if ctx.stages:
        parts.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in ctx.stages) + "</ul>")
    if ctx.advice:
        parts.append(
            f"<p>Chosen by <code>--strategy auto</code>: {escape(str(ctx.advice.get('reason', '')))}</p>"
        )
        parts.append(
            table(["measured (advice.json)", "value"], [[k, _plain(v)] for k, v in ctx.advice.items()], 2)
        )
    return "".join(parts)


def _config(r: Report, figures: dict[str, bytes]) -> str:
    return f"<pre>{escape(r.context.config_yaml)}</pre>" if r.context.config_yaml else NO_RUN


def _plain(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "–" if value is None else str(value)
