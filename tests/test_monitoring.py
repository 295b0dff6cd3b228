"""Monitoring: a plain `graft.train` writes every kind of TensorBoard record (read back with tensorboard's
own EventAccumulator), W&B works offline, and the pieces that pick and draw what is shown are right."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import graft
from conftest import TINY, make_color_images
from graft.config import resolve_config
from graft.errors import GraftError
from graft.monitoring.monitor import EvalOutputs, Monitor
from graft.monitoring.sink import Captioned
from graft.monitoring.visuals import CAPTION, TILE, captioned_grid, group_histograms
from graft.strategies.groups import LayerGroup

# A learning rate too small to learn anything in 2 epochs: validation keeps mistakes to show; and every
# record kind on, the model graph too (off by default).
CONFUSED = {**TINY, "epochs": 2, "lr": 1e-5, "log.every_n_steps": 1, "log.histogram_every_n_steps": 2,
            "log.graph": True}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    return graft.train(make_color_images(root / "colors"), out=root / "run", **CONFUSED)


@pytest.fixture(scope="module")
def events(run) -> EventAccumulator:
    acc = EventAccumulator(str(run.path / "tb"), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    return acc.Reload()


def test_scalars_per_step_and_per_epoch(run, events):
    steps_per_epoch = run.history[0]["step"]
    loss = events.Scalars("Loss/train")
    assert [e.step for e in loss] == list(range(1, 2 * steps_per_epoch + 1))  # every step (every_n_steps=1)
    assert all(0 < e.value < 10 for e in loss)
    assert [e.value for e in events.Scalars("Accuracy/val")] == pytest.approx(
        [h["val_acc"] for h in run.history]
    )
    assert [e.step for e in events.Scalars("Loss/val")] == [h["step"] for h in run.history]  # one axis: steps
    lr_tags = [t for t in events.Tags()["scalars"] if t.startswith("LR/")]
    assert (
        "LR/head" in lr_tags and len(lr_tags) == 6
    )  # one per layer group (test_resnet: stem, 4 stages, head)
    assert all(0 < e.value <= 1e-5 for e in events.Scalars("LR/head"))
    assert all(e.value > 0 for e in events.Scalars("Throughput/train_samples_per_s"))
    assert len(events.Scalars("Time/epoch_seconds")) == 2


def test_histograms_of_weights_and_gradients_per_group(run, events):
    tags = events.Tags()["histograms"]
    assert {"Weights/head", "Gradients/head", "Weights/layer1.0", "Gradients/layer1.0"} <= set(tags)
    head = events.Histograms("Weights/head")
    assert [e.step for e in head] == list(range(2, run.history[-1]["step"] + 1, 2))
    params = sum(p.numel() for n, p in graft.load(run.path).model.named_parameters() if n.startswith("fc"))
    assert head[-1].histogram_value.num == params
    assert sum(head[-1].histogram_value.bucket) == pytest.approx(params)


def test_histograms_at_least_once_per_epoch(tmp_path):
    """Epochs shorter than histogram_every_n_steps: an epoch the period misses gets one at its last step."""
    data = make_color_images(tmp_path / "colors")
    run = graft.train(data, out=tmp_path / "run", **{**TINY, "log.histogram_every_n_steps": 8})
    assert [h["step"] for h in run.history] == [5, 10, 15]  # 48 images, a fifth held out, batches of 8
    acc = EventAccumulator(str(run.path / "tb"), size_guidance={"histograms": 0}).Reload()
    for tag in ("Weights/head", "Gradients/head"):
        # steps 1-5 and 11-15 hold no multiple of 8: their epochs' last steps; steps 6-10 hold step 8
        assert [e.step for e in acc.Histograms(tag)] == [5, 8, 15], tag


def test_histograms_off_means_off():
    cfg = resolve_config(overrides={"log.histogram_every_n_steps": 0}).log
    monitor = Monitor(None, cfg, torch.nn.Linear(1, 1), [], ["a", "b"])
    assert not any(monitor.histograms_due(step, last_of_epoch=True) for step in range(1, 100))


def test_images_of_augmented_inputs_and_worst_mistakes(run, events):
    assert set(events.Tags()["images"]) == {"Images/train_augmented", "Images/val_worst_misclassified"}
    start = events.Images("Images/train_augmented")
    assert len(start) == 1 and start[0].step == 0 and start[0].width == 8 * TILE
    worst = events.Images("Images/val_worst_misclassified")
    assert [e.step for e in worst] == [h["step"] for h in run.history]  # one gallery per epoch


def test_graph_text_and_hparams(run, events):
    assert events.Graph() is not None and len(events.Graph().node) > 20
    config = events.Tensors("Config/resolved/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "test_resnet" in config and "optim:" in config
    strategy = events.Tensors("Strategy/explanation/text_summary")[0].tensor_proto.string_val[0].decode()
    assert strategy.startswith("**full**")  # auto picked full: no pretrained weights
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["model.name"].string_value == "test_resnet" and hparams["optim.lr"].number_value == 1e-5
    best = events.Scalars("hparam/best_val_acc")
    assert best[0].value == pytest.approx(run.best_metric)


def test_logging_leaves_training_unchanged(run, tmp_path):
    """Images, histograms and the graph read the model and data without touching any RNG or mode."""
    quiet = {**CONFUSED, "log": "none", "log.histogram_every_n_steps": 0, "log.images": 0, "log.graph": False}
    data = make_color_images(tmp_path / "colors")
    plain = graft.train(data, out=tmp_path / "plain", **quiet)
    assert not (plain.path / "tb").exists() and not (plain.path / "metrics.csv").exists()
    same = [(h["train_loss"], h["val_loss"]) for h in plain.history]
    assert same == [(h["train_loss"], h["val_loss"]) for h in run.history]


def test_wandb_offline_run_from_the_cli(tmp_path):
    """`graft train ... --log csv,wandb` with WANDB_MODE=offline: no network, a complete offline run."""
    pytest.importorskip("wandb")
    data, out = make_color_images(tmp_path / "colors"), tmp_path / "run"
    flags = ["--model", "test_resnet", "--no-pretrained", "--img-size", "32", "--epochs", "2", "--batch-size", "8",
             "--lr", "1e-5", "--num-workers", "0", "--set", "log.histogram_every_n_steps=2", "-q"]  # fmt: skip
    result = subprocess.run(
        [str(Path(sys.executable).parent / "graft"), "train", str(data), *flags, "--out", str(out), "--log", "csv,wandb"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "W&B offline run" in result.stdout
    (offline,) = (out / "wandb").glob("offline-run-*")
    run_id = (out / "wandb" / "graft-run-id").read_text()
    records = (offline / f"run-{run_id}.wandb").read_bytes()
    for tag in (b"Loss/train", b"Accuracy/val", b"LR/head", b"Gradients/head", b"hparam/best_val_acc"):
        assert tag in records, tag  # the tags are stored as protobuf strings in the run's record log
    assert b"test_resnet" in records  # the config
    media = {p.name.rsplit("_", 2)[0] for p in (offline / "files" / "media" / "images" / "Images").iterdir()}
    assert media == {"train_augmented", "val_worst_misclassified"}
    assert not (out / "tb").exists() and (out / "metrics.csv").is_file()


def test_log_config_accepts_lists_and_none():
    assert resolve_config(overrides={"log": "tensorboard, wandb"}).log.sinks == ["tensorboard", "wandb"]
    assert resolve_config(overrides={"log": "none"}).log.sinks == []
    with pytest.raises(GraftError, match="log.sinks"):
        resolve_config(overrides={"log": "tensorbored"})


def test_worst_mistakes_are_the_highest_loss_errors():
    images = [(torch.full((3, 8, 8), float(i)), 0) for i in range(5)]
    monitor = Monitor(None, resolve_config().log, torch.nn.Linear(1, 1), [], ["a", "b"], (0, 0, 0), (1, 1, 1),
                      val_images=images)  # fmt: skip
    outputs = EvalOutputs(
        losses=torch.tensor([0.1, 2.0, 3.0, 0.5, 1.0]),
        preds=torch.tensor([0, 1, 0, 1, 1]),
        targets=torch.tensor([0, 0, 0, 0, 0]),
        confidence=torch.tensor([0.9, 0.8, 0.4, 0.6, 0.7]),
    )
    worst = monitor.worst_mistakes(outputs, 2)
    # sample 2 has the highest loss but is right; of the wrong ones (1, 3, 4), 1 then 4
    assert [w.caption for w in worst] == ["pred b (0.80)\ntrue a", "pred b (0.70)\ntrue a"]
    assert worst[0].image.shape == (8, 8, 3) and worst[0].image.max() == 1 * 255


def test_captioned_grid_and_histograms():
    tiles = [Captioned(np.zeros((16, 16, 3), np.uint8), f"image {i}") for i in range(10)]
    grid = captioned_grid(tiles, columns=4)
    assert grid.shape == (3 * (TILE + CAPTION), 4 * TILE, 3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model(torch.randn(5, 4)).sum().backward()
    groups = [LayerGroup("first", ("0.weight", "0.bias")), LayerGroup("head", ("1.weight", "1.bias"))]
    histograms = group_histograms(model, groups)
    assert set(histograms) == {"Weights/first", "Gradients/first", "Weights/head", "Gradients/head"}
    assert histograms["Weights/first"].num == 15 and histograms["Weights/first"].counts.sum() == 15
    assert json.dumps(float(histograms["Gradients/head"].sum))  # plain floats
