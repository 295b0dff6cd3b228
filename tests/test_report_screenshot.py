"""The evaluation report opens in a real browser: headless Chromium photographs it.

Marked slow (a browser start) and skipped where Chromium is not installed; `make screenshots` runs the
same script on the demo run for docs/img/report.png."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import graft
from conftest import TINY, make_color_images

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(
    not any(map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), reason="no Chromium"
)
def test_report_renders_in_chromium(tmp_path):
    confused = {**TINY, "epochs": 2, "lr": 1e-3}  # some mistakes, so every section has content
    run = graft.train(make_color_images(tmp_path / "colors"), out=tmp_path / "run", **confused)
    target = tmp_path / "report.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "report_screenshot.py"), "--run", str(run.path), "--out", str(target)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    shot = Image.open(target).convert("RGB")
    assert shot.size == (1200, 2400)
    colors = shot.getcolors(maxcolors=1 << 20)
    assert len(colors) > 200  # figures and text drawn, not a blank page or an error page
    # the page is drawn to the bottom of the window: the report is longer than one screen
    bottom = shot.crop((0, 2200, 1200, 2400)).getcolors(maxcolors=1 << 20)
    assert len(bottom) > 20
