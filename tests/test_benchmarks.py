"""The benchmark scripts stay runnable: a --quick smoke run prints its ratios (no timing assertion)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_strategies_benchmark_quick():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "strategies.py"), "--quick"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {
        line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("full ", "auto "))
    }
    assert set(rows) == {"full", "auto"} and "1.00x" in rows["full"]
    assert "feature cache: frozen-backbone epoch" in result.stdout and "of the epoch" in result.stdout


def test_checkpoint_cost_benchmark_quick():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "checkpoint_cost.py"), "--quick"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [
        line for line in result.stdout.splitlines() if line.startswith(("at epoch ends", "+ every 10 steps"))
    ]
    assert len(rows) == 2 and all(row.endswith("%") for row in rows)


def test_logging_overhead_benchmark_quick():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "logging_overhead.py"), "--quick"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "default/off throughput ratio" in result.stdout
