"""`graft eval RUN_OR_BUNDLE [--data DIR_OR_CSV]`: metrics and an HTML/Markdown/JSON report."""

from __future__ import annotations

from pathlib import Path

import typer

from graft.monitoring.console import make_console, plural


def eval_command(
    target: Path = typer.Argument(
        ..., help="A run directory (runs/NAME) or a bundle folder (runs/NAME/model).", show_default=False
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Folder or CSV to evaluate on, as graft train takes it (its test split if it has one, else its "
        "val split, else all of it). Default: the run's validation split.",
    ),  # fmt: skip
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Report folder (default RUN/report, RUN/report-DATA with --data; BUNDLE-report-DATA beside a "
        "bundle outside its run).",
    ),  # fmt: skip
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Samples per forward pass."),
    num_workers: int | None = typer.Option(
        None, "--num-workers", help="DataLoader workers for large sets (default: CPUs - 1, at most 8)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout instead of a summary."),
) -> None:
    """Evaluate a trained model (single-label: accuracy, top-k, F1, per-class, confusion, calibration;
    multi-label: mAP, F1, per label; regression: MAE, RMSE, R², residuals); writes a report."""
    from graft.evaluation.plan import plan_evaluation

    plan = plan_evaluation(target, data, out)  # every input error, before torch is imported
    from graft.data.images import default_num_workers
    from graft.evaluation.evaluate import run_plan

    workers = default_num_workers() if num_workers is None else num_workers
    result = run_plan(plan, device=device, batch_size=batch_size, num_workers=workers)
    m = result.metrics
    if as_json:
        print((result.out / "metrics.json").read_text())
        return
    console = make_console()
    task = m.get("task", "single-label")
    what = {
        "multi-label": plural(m.get("num_classes", 0), "label"),
        "regression": f"regression on '{m.get('target')}'",
    }
    rows = [("data", f"{result.data.description}: {plural(m['num_samples'], 'sample')}, "
                     f"{what.get(task) or plural(m['num_classes'], 'class')}")]  # fmt: skip
    if task == "multi-label":
        rows.append(("scores", f"mAP {m['map']:.2%}  micro F1 {m['micro_f1']:.3f}  macro F1 {m['macro_f1']:.3f}  "
                               f"subset accuracy {m['subset_accuracy']:.2%}  Hamming {m['hamming_loss']:.4f}  loss {m['loss']:.4f}"))  # fmt: skip
        weakest = sorted((r for r in m["per_label"] if r["ap"] is not None), key=lambda r: r["ap"])[:3]
        if weakest:
            rows.append(
                ("weakest", ", ".join(f"{r['label']} (AP {r['ap']:.2f}, F1 {r['f1']:.2f})" for r in weakest))
            )
    elif task == "regression":
        shown = lambda x: "–" if x is None else f"{x:.4g}"  # noqa: E731
        r = m["residuals"]
        rows.append(("scores", f"MAE {shown(m['mae'])}  RMSE {shown(m['rmse'])}  R² {shown(m['r2'])}  "
                               f"Spearman {shown(m['spearman'])}"))  # fmt: skip
        rows.append(("errors", f"bias {r['mean']:+.3g}  median |error| {shown(m['median_abs_error'])}  "
                               f"90% within {shown(r['abs_p90'])}  largest {shown(r['abs_max'])}"
                               + (f"  (MAE predicting the training mean: {shown(m['baseline_mae'])})"
                                  if m.get("baseline_mae") is not None else "")))  # fmt: skip
    else:
        rows.append(("scores", f"accuracy {m['accuracy']:.2%}  top-{m['top_k']} {m['top_k_accuracy']:.2%}  macro F1 "
                               f"{m['macro_f1']:.3f}  weighted F1 {m['weighted_f1']:.3f}  ECE {m['ece']:.2%}  loss {m['loss']:.4f}"))  # fmt: skip
    if m.get("most_confused"):
        pairs = ", ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in m["most_confused"][:3])
        rows.append(("confused", pairs))
    beside = (
        "report.md and metrics.json" if task == "single-label" else "report.md, metrics.json, predictions.csv"
    )
    rows.append(("report", f"{result.out / 'index.html'} ({beside} beside it)"))
    for key, value in rows:
        console.print(f"[bold]{key:<8}[/bold] {value}", highlight=False)
    for warning in result.data.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
