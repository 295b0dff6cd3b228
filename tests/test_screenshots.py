"""TensorBoard opens a graft run in a real browser: headless Chromium photographs its dashboards.

Marked slow (a browser per picture) and skipped where Chromium is not installed; `make screenshots`
runs the same script on the demo run for docs/img/."""

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
def test_tensorboard_dashboards_render_a_run(tmp_path):
    confused = {**TINY, "epochs": 2, "lr": 1e-5, "log.histogram_every_n_steps": 2}  # mistakes to show
    run = graft.train(make_color_images(tmp_path / "colors"), out=tmp_path / "run", **confused)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "screenshots.py"), "--run", str(run.path), "--out", str(tmp_path / "img")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    shots = {p.name: Image.open(p) for p in (tmp_path / "img").glob("*.png")}
    assert {"tensorboard-scalars.png", "tensorboard-images.png", "tensorboard-worst-mistakes.png"} <= set(
        shots
    )
    assert shots["tensorboard-scalars.png"].size == (1400, 1100)
    # the gallery as TensorBoard serves it: rows of 128-px tiles with a caption strip under each
    assert shots["tensorboard-worst-mistakes.png"].size[1] % (128 + 36) == 0
    colors = shots["tensorboard-scalars.png"].convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colors) > 50  # a drawn page, not a blank one
