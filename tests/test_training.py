import csv
import math
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import graft
from conftest import TINY
from graft.errors import GraftError
from graft.training.optim import lr_factor


def test_run_writes_every_artifact(trained_run):
    run = trained_run
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "metrics.csv", "split.csv", "checkpoints", "model", "tb"} <= names
    assert {p.name for p in (run.path / "checkpoints").iterdir()} == {"last.pt", "best.pt"}


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
    ckpt_dir = trained_run.path / "checkpoints"
    last = torch.load(ckpt_dir / "last.pt", weights_only=True)  # no pickled code needed
    best = torch.load(ckpt_dir / "best.pt", weights_only=True)
    assert {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "epoch",
        "step",
        "metric",
        "state",
        "config",
        "classes",
    } <= set(last)
    assert last["epoch"] == 3 and last["classes"] == ["blue", "green", "red"]
    assert best["epoch"] == trained_run.best_epoch
    assert best["metric"]["val_acc"] == trained_run.best_metric
    assert last["config"]["train"]["epochs"] == 3


def test_tensorboard_events_are_readable(trained_run):
    acc = EventAccumulator(str(trained_run.path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"Loss/train", "Loss/val", "Accuracy/val", "LR/group0"} <= tags
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
    sa = torch.load(a.path / "checkpoints" / "last.pt", weights_only=True)["model"]
    sb = torch.load(b.path / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_gradient_accumulation_counts_optimizer_steps(color_folder: Path, tmp_path: Path):
    run = graft.train(color_folder, out=tmp_path / "r", **{**TINY, "epochs": 1, "accum_steps": 2})
    batches = 39 // 8  # 48 images - 9 val = 39 train; the partial last batch is dropped
    assert run.history[-1]["step"] == math.ceil(batches / 2)


def test_existing_run_is_never_overwritten(trained_run):
    last = trained_run.path / "checkpoints" / "last.pt"
    before = (last.stat().st_mtime_ns, last.read_bytes())
    with pytest.raises(GraftError, match="already holds a run"):
        graft.train(trained_run.config.data.path, out=trained_run.path, **TINY)
    assert (last.stat().st_mtime_ns, last.read_bytes()) == before


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
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)
    assert lr_factor(50, 100, 0, 0.0, kind="constant") == 1.0
