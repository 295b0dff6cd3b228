"""label_issues.html: what `graft check --labels` found, as one self-contained page in the report's style
(render_html.py's CSS and tables, gallery.py's thumbnails and texts): the likely wrong labels grouped by
given label, the outliers, the clusters of copies."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from graft.data.label_issues import LabelIssues
from graft.evaluation.gallery import sample_html
from graft.evaluation.render_html import STYLE, table

SHOWN_ISSUES = 300  # thumbnails are inlined: a page of every flagged sample of a big set would not open
SHOWN_OUTLIERS = 60
SHOWN_CLUSTERS = 50
EXTRA_STYLE = ".tile .meta{color:#666}.tile .given{font-weight:600}h3{font-size:15px;margin:18px 0 8px}"


def render_label_page(issues: LabelIssues, data: str) -> str:
    """The page for `issues` of the data at `data` (its path as given)."""
    n, flagged = len(issues.flagged), int(issues.flagged.sum())
    title = f"Label check: {data}"
    about = {"data": issues.spec.description, "model": issues.model, "out-of-fold": f"{issues.folds} folds of the probe's head",
             "samples": f"{len(issues.spec.train)} train / {len(issues.spec.val)} val",
             "took": f"{issues.seconds.get('total', 0.0):.1f} s"}  # fmt: skip
    cards = [(f"{flagged}", f"flagged of {n}"), (f"{issues.noise_rate:.1%}", "estimated noise rate"),
             (f"{len(issues.flagged_keys('train'))}", "flagged in train (--fix acts on them)"),
             (f"{int(issues.outliers.sum())}", "outliers"), (f"{len(issues.clusters)}", "clusters of copies")]  # fmt: skip
    if issues.accuracy is not None:
        cards.insert(2, (f"{issues.accuracy:.1%}", "out-of-fold accuracy vs the given labels"))
    sections = {"issues": ("Likely wrong labels", _issues(issues)), "outliers": ("Outliers", _outliers(issues)),
                "clusters": ("Copies", _clusters(issues)), "method": ("How this was found", _method(issues))}  # fmt: skip
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, (title, _) in sections.items())
    body = "".join(
        f'<section id="{key}"><h2>{title}</h2>{html}</section>' for key, (title, html) in sections.items()
    )
    about_line = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in about.items())
    card_html = "".join(f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
                        for v, k in cards)  # fmt: skip
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}{EXTRA_STYLE}</style></head><body><main><h1>{escape(title)}</h1>"
        f'<div class="about">{about_line}</div><nav>{nav}</nav><div class="cards">{card_html}</div>'
        f"{body}</main></body></html>\n"
    )


def _tile(issues: LabelIssues, i: int, note: str) -> str:
    item, spec = issues.items[i], issues.spec
    shown = sample_html(item if spec.modality == "text" else item.path)
    name = "" if spec.modality == "text" else f'<div class="meta">{escape(item.path.name)}</div>'
    given, suggested = spec.label_text(issues.given[i]), spec.label_text(issues.suggested[i])
    verdict = (f'<div class="wrong">suggested {escape(suggested or "(none)")}</div>' if suggested != given
               else f'<div class="right">model agrees: {escape(given or "(none)")}</div>')  # fmt: skip
    return (f'<div class="tile">{shown}{name}<div class="given">given {escape(given or "(none)")}</div>{verdict}'
            f'<div class="meta">{escape(issues.splits[i])} · {escape(note)}</div></div>')  # fmt: skip


def _issues(issues: LabelIssues) -> str:
    flagged = [i for i in issues.ranked() if issues.flagged[i]]
    if not flagged:
        return "<p>No label looks wrong to the out-of-fold model.</p>"
    by_given: dict[str, list[int]] = defaultdict(list)
    for i in flagged[:SHOWN_ISSUES]:
        by_given[issues.spec.label_text(issues.given[i])].append(i)
    parts = [f'<p class="note">{escape(w)}</p>' for w in issues.warnings()]
    parts += [f"<p>{len(flagged)} samples whose given label the out-of-fold model confidently contradicts, "
             "worst first within each given label (quality: the model's probability of the given label, 0 to 1). "
             "label_issues.csv beside this page lists every sample with its scores.</p>"]  # fmt: skip
    if len(flagged) > SHOWN_ISSUES:
        parts.append(f'<p class="note">The {SHOWN_ISSUES} worst are shown.</p>')
    for given, members in sorted(by_given.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        tiles = "".join(_tile(issues, i, f"quality {issues.quality[i]:.3f}") for i in members)
        parts.append(
            f'<h3>given {escape(given or "(none)")} ({len(members)})</h3><div class="gallery">{tiles}</div>'
        )
    return "".join(parts)


def _outliers(issues: LabelIssues) -> str:
    order = [i for i in sorted(range(len(issues.ood)), key=lambda i: issues.ood[i]) if issues.outliers[i]]
    if not order:
        return "<p>No sample is far from the others in the model's feature space.</p>"
    tiles = "".join(_tile(issues, i, f"outlier score {issues.ood[i]:.3f}") for i in order[:SHOWN_OUTLIERS])
    return (f"<p>{len(order)} samples far from their nearest neighbours in the model's feature space (lowest "
            "score first): other kinds of input, corrupt or blank files, crops of something else.</p>"
            f'<div class="gallery">{tiles}</div>')  # fmt: skip


def _clusters(issues: LabelIssues) -> str:
    if not issues.clusters:
        return "<p>No copies: no two samples share their bytes or perceptual hash (texts: their normalised text).</p>"
    index = {s.key: i for i, s in enumerate(issues.items)}
    parts = [f"<p>{len(issues.clusters)} groups of samples that are copies of each other (the same bytes, or "
             "perceptual hashes within 2 of 64 bits; texts equal after normalising case and punctuation). Copies "
             "with different labels are a label error on one side; copies across train and val leak.</p>"]  # fmt: skip
    for n, group in enumerate(issues.clusters[:SHOWN_CLUSTERS], start=1):
        members = [index[key] for key in group if key in index]
        labels = {issues.spec.label_text(issues.given[i]) for i in members}
        note = " (different labels)" if len(labels) > 1 else ""
        tiles = "".join(_tile(issues, i, f"cluster {n}") for i in members)
        parts.append(
            f'<h3>cluster {n}: {len(members)} samples{escape(note)}</h3><div class="gallery">{tiles}</div>'
        )
    return "".join(parts)


def _method(issues: LabelIssues) -> str:
    rows = [[phase.replace("_", " "), f"{value:.1f} s"] for phase, value in issues.seconds.items()]
    return (
        "<p>Frozen passes of the model over every training and validation sample (the eval transform; photos also mirrored when training flips them; stored in "
        "graft's feature cache, so a second check of the same data and model loads it); on "
        f"{escape(issues.features or 'its features')}, the probe's head (the convex problem graft train solves first) solved on "
        f"{issues.folds - 1} of {issues.folds} stratified folds and applied to the fold left out, so every sample "
        "is judged by a head that never saw its label. cleanlab's confident learning (find_label_issues) flags the labels to doubt; its "
        "OutOfDistribution score on the features finds the outliers.</p>" + table(["phase", "time"], rows)
    )
