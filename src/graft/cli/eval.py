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
    """Evaluate a trained model: accuracy, top-k, F1, per-class, confusion, calibration; writes a report."""
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
    rows = [
        ("data", f"{result.data.description}: {plural(m['num_samples'], 'sample')}, "
                 f"{plural(m['num_classes'], 'class')}"),
        ("scores", f"accuracy {m['accuracy']:.2%}  top-{m['top_k']} {m['top_k_accuracy']:.2%}  macro F1 "
                   f"{m['macro_f1']:.3f}  weighted F1 {m['weighted_f1']:.3f}  ECE {m['ece']:.2%}  loss {m['loss']:.4f}"),
    ]  # fmt: skip
    if m["most_confused"]:
        pairs = ", ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in m["most_confused"][:3])
        rows.append(("confused", pairs))
    rows.append(("report", f"{result.out / 'index.html'} (report.md and metrics.json beside it)"))
    for key, value in rows:
        console.print(f"[bold]{key:<8}[/bold] {value}", highlight=False)
    for warning in result.data.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
