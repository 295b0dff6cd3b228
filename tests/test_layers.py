"""The layering in pyproject.toml ([tool.importlinter]) holds, and the check can fail: an upward import
planted in a copy of the package breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_package_keeps_its_layers_and_has_no_cycles(tmp_path):
    result = lint(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_or_a_cycle_breaks_the_contracts(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "graft", src / "graft", ignore=shutil.ignore_patterns("__pycache__"))
    folder = src / "graft" / "runs" / "folder.py"  # the run folder's names must not know the workflow
    folder.write_text(folder.read_text() + "\n\ndef _upward():\n    from graft.workflow.train import Run\n")
    sink = src / "graft" / "monitoring" / "sink.py"  # logger imports sink; sink importing logger is a cycle
    sink.write_text(
        sink.read_text() + "\n\ndef _cycle():\n    from graft.monitoring.logger import MetricLogger\n"
    )
    result = lint(src, tmp_path)
    assert result.returncode != 0
    assert "graft.runs is not allowed to import graft.workflow" in result.stdout, result.stdout
    assert "No cycles are allowed in graft.monitoring" in result.stdout, result.stdout
