import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import graft
from conftest import TINY, checkpoint
from graft.errors import GraftError
from graft.training.optim import lr_factor


def test_run_writes_every_artifact(trained_run):
    run = trained_run
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "metrics.csv", "split.csv", "checkpoints", "model", "tb"} <= names
    names = {p.name for p in (run.path / "checkpoints").iterdir()}
    assert names == {"index.json", "step-000015"}  # last and best are the final epoch here


def test_model_learns_and_history_is_consistent(trained_run):
    assert trained_run.best_metric >= 0.9
    assert len(trained_run.history) == TINY["epochs"]
    assert trained_run.best_metric == max(h["val_acc"] for h in trained_run.history)


def test_config_yaml_is_resolved(trained_run):
    saved = yaml.safe_load((trained_run.path / "config.yaml").read_text())
    assert saved["data"]["img_size"] == 32 and saved["data"]["num_workers"] == 0
    assert saved["out"] == str(trained_run.path)
    assert saved["model"]["name"] == "test_resnet"
    assert graft.api.resolve_config(trained_run.path / "config.yaml") == trained_run.config


def test_metrics_csv_has_one_row_per_epoch(trained_run):
    rows = list(csv.DictReader((trained_run.path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_acc", "lr", "epoch_time"} <= set(rows[0])
    assert all(0 <= float(r["val_acc"]) <= 1 and float(r["epoch_time"]) > 0 for r in rows)


def test_checkpoints_are_plain_and_best_is_the_best_epoch(trained_run):
    folder = trained_run.path / "checkpoints" / "step-000015"
    assert sorted(p.name for p in folder.iterdir()) == [
        "MANIFEST.json",
        "model.safetensors",
        "state.json",
        "train_state.pt",
    ]
    train_state = torch.load(folder / "train_state.pt", weights_only=True)  # no pickled code needed
    assert {"optimizer", "scaler", "rng"} <= set(train_state)
    state = json.loads((folder / "state.json").read_text())  # inspectable with any JSON tool
    assert {"progress", "config", "classes", "schedule"} <= set(state)
    assert state["progress"]["epoch"] == 3 and state["classes"] == ["blue", "green", "red"]
    assert state["config"]["train"]["epochs"] == 3
    best = checkpoint(trained_run.path, "best")
    assert (
        best.state["progress"]["epoch"] == trained_run.best_epoch
        or best.state["progress"]["best_epoch"] == trained_run.best_epoch
    )
    assert best.state["progress"]["best_metric"] == trained_run.best_metric


def test_tensorboard_events_are_readable(trained_run):
    acc = EventAccumulator(str(trained_run.path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"Loss/train", "Loss/val", "Accuracy/val", "LR/head"} <= tags
    val = [e.value for e in acc.Scalars("Accuracy/val")]
    assert len(val) == 3 and max(val) == pytest.approx(trained_run.best_metric)


def test_split_csv_reproduces_the_split(trained_run, tmp_path: Path):
    from graft.data.discover import discover

    spec = discover(trained_run.path / "split.csv")
    rows = list(csv.DictReader((trained_run.path / "split.csv").open()))
    assert len(spec.val) == sum(r["split"] == "val" for r in rows) == 9


def test_same_seed_same_run(color_folder: Path, tmp_path: Path):
    a = graft.train(color_folder, out=tmp_path / "a", **TINY)
    b = graft.train(color_folder, out=tmp_path / "b", **TINY)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    sa, sb = checkpoint(a.path).model, checkpoint(b.path).model
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_gradient_accumulation_counts_optimizer_steps(color_folder: Path, tmp_path: Path):
    run = graft.train(color_folder, out=tmp_path / "r", **{**TINY, "epochs": 1, "accum_steps": 2})
    batches = math.ceil(39 / 8)  # 48 images - 9 val = 39 train; only a lone trailing sample would be dropped
    assert run.history[-1]["step"] == math.ceil(batches / 2) == 3


def test_existing_run_is_never_overwritten(trained_run):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in trained_run.path.rglob("*") if p.is_file()}
    with pytest.raises(GraftError, match="already holds a run"):
        graft.train(trained_run.config.data.path, out=trained_run.path, **TINY)
    assert {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in trained_run.path.rglob("*") if p.is_file()
    } == before


def test_bad_model_leaves_no_run_directory(color_folder: Path, tmp_path: Path):
    with pytest.raises(GraftError, match="unknown model"):
        graft.train(color_folder, out=tmp_path / "r", **{**TINY, "model": "no_such_net"})
    assert not (tmp_path / "r").exists()


def test_torchvision_model_trains(color_folder: Path, tmp_path: Path):
    run = graft.train(
        color_folder, out=tmp_path / "tv", **{**TINY, "model": "tv:mobilenet_v3_small", "epochs": 1}
    )
    assert (run.bundle / "model.safetensors").is_file()


def test_lr_schedule_warmup_then_cosine_to_floor():
    factors = [lr_factor(s, total_steps=100, warmup_steps=10, min_ratio=0.01) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # monotone decay after warmup
    assert factors[-1] == pytest.approx(0.01)  # the last step is taken at the floor
    assert factors[10] < 1.0
    assert lr_factor(50, 100, 0, 0.0, kind="constant") == 1.0


def test_epoch_record_reports_the_lr_used_and_short_runs_plot_train_loss(color_folder: Path, tmp_path: Path):
    run = graft.train(
        color_folder, out=tmp_path / "r", **{**TINY, "epochs": 2}
    )  # 5 steps/epoch < every_n_steps
    steps = run.history[-1]["step"]
    expected = TINY["lr"] * lr_factor(steps - 1, steps, 0, run.config.optim.min_lr_ratio)
    assert run.history[-1]["lr"] == pytest.approx(expected)
    acc = EventAccumulator(str(run.path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("Loss/train")] == [5, 10]


def test_out_folder_with_anything_in_it_is_refused(color_folder: Path, tmp_path: Path):
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    (out / "model" / "precious.txt").write_text("keep me")
    with pytest.raises(GraftError, match="already holds files"):
        graft.train(color_folder, out=out, **TINY)
    assert (out / "model" / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["model"]


def test_out_that_cannot_be_created_is_one_clear_error(color_folder: Path, tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(GraftError, match="afile is a file"):
        graft.train(color_folder, out=tmp_path / "afile" / "run", **TINY)
    with pytest.raises(GraftError, match="is a file, not a folder"):
        graft.train(color_folder, out=tmp_path / "afile", **TINY)


def test_batch_of_one_with_batchnorm_is_refused(color_folder: Path, tmp_path: Path):
    with pytest.raises(GraftError, match="BatchNorm.*--batch-size 2"):
        graft.train(color_folder, out=tmp_path / "r", **{**TINY, "batch_size": 1})
    assert not (tmp_path / "r").exists()


def test_input_size_the_model_cannot_take_fails_before_writing(color_folder: Path, tmp_path: Path):
    with pytest.raises(GraftError, match="tv:vit_b_16 cannot take 32x32 inputs"):
        graft.train(color_folder, out=tmp_path / "r", **{**TINY, "model": "tv:vit_b_16"})
    assert not (tmp_path / "r").exists()


def test_torchvision_model_with_aux_heads_trains(color_folder: Path, tmp_path: Path):
    run = graft.train(
        color_folder, out=tmp_path / "g", **{**TINY, "model": "tv:googlenet", "epochs": 1, "img_size": 64}
    )
    assert run.history[0]["step"] > 0


def test_ctrl_c_finishes_the_step_checkpoints_bundles_and_exits_0(color_folder: Path, tmp_path: Path):
    """Ctrl-C (SIGINT) mid-run: the step in flight finishes, a checkpoint is written, the best finished epoch
    is bundled, the resume command is printed, exit code 0."""
    import os
    import signal
    import subprocess
    import sys

    graft_bin = str(Path(sys.executable).parent / "graft")
    out = tmp_path / "r"
    cmd = [graft_bin, "train", str(color_folder), "--model", "test_resnet", "--no-pretrained", "--img-size", "32",
           "--epochs", "500", "--batch-size", "8", "--num-workers", "1", "--out", str(out), "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    for line in proc.stdout:
        if line.startswith("epoch 2/500"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 0, rest
    assert "stopped by SIGINT" in rest and f"Resume with: graft resume {out}" in rest
    assert (out / "model" / "model.safetensors").is_file()
    last = checkpoint(out)
    assert last.state["progress"]["epoch"] >= 2


def test_nan_never_becomes_best_and_ties_go_to_lower_loss():
    from graft.training.state import TrainState

    state = TrainState()
    for epoch, (acc, loss) in enumerate([(float("nan"), 1.0), (0.5, 0.9), (0.5, 0.7), (0.5, 0.8)], start=1):
        record = {"epoch": epoch, "val_acc": acc, "val_loss": loss}
        state.history.append(record)
        state.update_best(record, "val_acc", "max")
    assert (state.best_epoch, state.best_metric) == (3, 0.5)
    # `graft runs` reads the same choice back from metrics.csv's rows (one rule, runs/best.py).
    from graft.runs.status import _best

    rows = [{k: str(v) for k, v in r.items()} for r in state.history]
    assert _best(rows, "val_acc", "max") == (0.5, 3)


def test_live_progress_bar_on_a_terminal(color_folder: Path, tmp_path: Path):
    """On a TTY the epoch bar shows samples done, samples/s, ETA and the loss; the summary line stays."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    graft.train(color_folder, out=tmp_path / "r", console=console, **{**TINY, "quiet": False, "epochs": 1})
    text = buffer.getvalue()
    assert "samples/s" in text and "eta" in text and "loss " in text and "/39" in text  # the live bar drew
    assert "epoch 1/1  train_loss" in text
