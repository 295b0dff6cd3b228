"""What graft prints and writes says what happened: full-precision wall times, plain numbers in JSON, a
bundle others can read, no suggestion of files never written, cheap mistakes reported before slow work."""

from __future__ import annotations

import csv
import json
import os

from test_cli import FAST, graft


def test_a_run_writes_plain_numbers_a_shareable_bundle_and_suggests_only_what_exists(tmp_path, color_folder):
    old = os.umask(0o022)
    try:
        result = graft("train", color_folder, *FAST, "--log", "csv", "--out", tmp_path / "run", "-q")
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    walls = [float(r["wall_time"]) for r in rows]
    assert walls == sorted(walls) and len(set(walls)) == len(walls)  # was 1.79611e+09 on every row
    meta = json.loads((run / "model" / "graft.json").read_text())
    assert all(len(repr(v)) <= 10 for v in meta["metrics"].values()), meta["metrics"]  # no float32 noise
    for path in (run / "model").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, (
            path
        )  # safetensors writes 0600; the bundle is for sharing
    assert "tensorboard --logdir" not in result.stdout  # --log csv wrote no tb/
    assert not (run / "tb").exists()
    assert "done in " in result.stdout and "since the run started" in result.stdout


def test_a_model_typo_and_a_missing_gpu_fail_before_the_data_check(tmp_path, color_folder):
    import torch

    typo = graft("train", color_folder, "--model", "resnet5O", "--out", tmp_path / "a")
    assert typo.returncode == 2 and "unknown model 'resnet5O'" in typo.stderr
    assert "check " not in typo.stdout  # the data check never ran
    if not torch.cuda.is_available():
        gpu = graft("train", color_folder, *FAST, "--device", "cuda", "--out", tmp_path / "b")
        assert gpu.returncode == 2 and "sees no CUDA GPU" in gpu.stderr and "check " not in gpu.stdout
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_input_far_below_the_pretrained_size_is_said_before_the_frozen_pass(tmp_path, color_folder):
    import io

    from rich.console import Console

    import graft

    out = io.StringIO()
    graft.train(color_folder, model="efficientnet_lite0", img_size=32, epochs=0, num_workers=0,
                out=tmp_path / "run", console=Console(file=out, width=200))  # fmt: skip
    text = out.getvalue()
    assert "--img-size 32 is far below the 224 px the pretrained weights were trained at" in text
    assert text.index("far below") < text.index("cache ")  # said before the frozen pass is reported


def test_the_live_bar_shows_validation_too(tmp_path, color_folder):
    import io

    from rich.console import Console

    import graft
    from conftest import TINY

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    graft.train(color_folder, out=tmp_path / "run", console=console, **{**TINY, "epochs": 1, "quiet": False})
    assert "validating" in out.getvalue()  # the bar no longer freezes while the validation set runs


def test_the_data_check_shows_progress_in_a_terminal(color_folder):
    import io

    from rich.console import Console

    from graft.data.check import check_data
    from graft.data.discover import discover

    out = io.StringIO()
    report = check_data(discover(color_folder), console=Console(file=out, force_terminal=True, width=120))
    assert "reading images" in out.getvalue() and sum(report.counts["train"].values()) > 0
    quiet = io.StringIO()
    check_data(discover(color_folder), console=Console(file=quiet, width=120))  # not a terminal: no bar
    assert quiet.getvalue() == ""
