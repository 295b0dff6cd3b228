"""Strategy invariants, proven on real training runs (not assumed):
frozen tensors are bitwise unchanged and never in the optimizer; BatchNorm statistics of frozen groups
hold; the stage and its param groups are in the checkpoint; cached features give the model's own results."""

import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import graft
from conftest import TINY, checkpoint, make_color_images
from graft.models.registry import create_model
from graft.strategies.groups import layer_groups


@pytest.fixture
def start_weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """Known starting weights (a --weights file), so "unchanged" can be checked bitwise."""
    torch.manual_seed(1)
    state = {
        k: v.clone() for k, v in create_model("test_resnet", 3, pretrained=False).model.state_dict().items()
    }
    save_file(state, str(tmp_path / "start.safetensors"))
    return tmp_path / "start.safetensors", state


def _train(data: Path, out: Path, weights: Path, **settings):
    return graft.train(data, out=out, **{**TINY, "weights": weights, **settings})


def _final(run) -> dict:
    last = checkpoint(run.path)
    return {"model": last.model, "optimizer": last.train_state["optimizer"], "state": last.state["progress"],
            "config": last.state["config"]}  # fmt: skip


def _groups() -> list:
    return layer_groups(create_model("test_resnet", 3, pretrained=False).model)


def test_linear_probe_leaves_the_backbone_bitwise_untouched(color_folder, tmp_path, start_weights):
    weights, start = start_weights
    run = _train(color_folder, tmp_path / "r", weights, strategy="linear-probe")
    final = _final(run)
    head = set(_groups()[-1].param_names)
    for key, value in start.items():
        if key in head:
            assert not torch.equal(final["model"][key], value), key  # the head did learn
        else:  # weights, biases, BatchNorm running stats and counters: all identical
            assert torch.equal(final["model"][key], value), key
    names = {g["name"] for g in final["optimizer"]["param_groups"]}
    assert names == {"head", "head/no_decay"}  # frozen tensors never entered the optimizer
    # the head was solved on the frozen features (epoch 0): no epoch is left for a linear probe to train
    assert [h["epoch"] for h in run.history] == [0] and run.config.train.epochs == 0
    assert run.history[0]["train_loss"] < math.log(3)  # and the head learned


def test_train_bn_adapts_statistics_but_not_frozen_weights(color_folder, tmp_path, start_weights):
    weights, start = start_weights
    # The SGD-trained head (no probe): its epochs are when BatchNorm statistics can adapt.
    final = _final(_train(color_folder, tmp_path / "r", weights, strategy="linear-probe", train_bn=True,
                          **{"strategy.probe": False}))  # fmt: skip
    assert not torch.equal(final["model"]["bn1.running_mean"], start["bn1.running_mean"])
    assert torch.equal(final["model"]["bn1.weight"], start["bn1.weight"])
    assert torch.equal(final["model"]["conv1.0.weight"], start["conv1.0.weight"])


def test_gradual_unfreezes_on_schedule_and_records_its_stage(color_folder, tmp_path, start_weights):
    weights, start = start_weights
    run = _train(color_folder, tmp_path / "r", weights, strategy="gradual", unfreeze_at=[1], epochs=3,
                 **{"strategy.unfreeze_groups": 2})  # fmt: skip
    final = _final(run)
    groups = _groups()  # conv1+bn1, layer1.0, layer2.0, layer3.0, layer4.0, head
    assert final["state"]["stage"] == 1 and final["config"]["strategy"]["name"] == "gradual"
    unfrozen = {n for g in groups[3:] for n in g.param_names}
    for group in groups[:3]:  # never unfrozen: bitwise unchanged
        for name in group.param_names:
            assert torch.equal(final["model"][name], start[name]), name
    changed = [n for n in unfrozen if not torch.equal(final["model"][n], start[n])]
    assert len(changed) == len(unfrozen)
    # BatchNorm of a group frozen at the start keeps its pretrained statistics after it unfreezes.
    assert torch.equal(final["model"]["layer3.0.bn1.running_mean"], start["layer3.0.bn1.running_mean"])
    names = [g["name"] for g in final["optimizer"]["param_groups"]]
    assert names[:2] == ["head", "head/no_decay"] and {"layer3.0", "layer4.0/no_decay"} <= set(names)
    lrs = {g["name"]: g["base_lr"] for g in final["optimizer"]["param_groups"]}
    decay = run.config.strategy.layer_decay
    assert lrs["layer4.0"] == pytest.approx(TINY["lr"] * decay) and lrs["layer3.0"] == pytest.approx(
        TINY["lr"] * decay**2
    )


def test_discriminative_lrs_decay_toward_the_input(color_folder, tmp_path):
    run = graft.train(
        color_folder,
        out=tmp_path / "r",
        **{**TINY, "strategy": "discriminative", "layer_decay": 0.5, "epochs": 1},
    )
    lrs = [
        g["base_lr"] for g in _final(run)["optimizer"]["param_groups"] if not g["name"].endswith("/no_decay")
    ]
    assert lrs == pytest.approx([TINY["lr"] * 0.5**k for k in (5, 4, 3, 2, 1, 0)])


def test_feature_cache_hits_and_is_invalidated(color_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    probe = {"strategy": "linear-probe", "cache_features": "on", "epochs": 2}
    first = graft.train(color_folder, out=tmp_path / "a", **{**TINY, **probe})
    assert "frozen features computed and cached" in capsys.readouterr().out
    second = graft.train(color_folder, out=tmp_path / "b", **{**TINY, **probe})
    assert "frozen features loaded from the cache" in capsys.readouterr().out
    assert [h["val_loss"] for h in first.history] == [h["val_loss"] for h in second.history]
    image = color_folder / "red" / "003.png"  # one image changes: the key must change
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(image)
    os.utime(image, ns=(1, 1))
    graft.train(color_folder, out=tmp_path / "c", **{**TINY, **probe})
    assert "computed and cached" in capsys.readouterr().out
    graft.train(
        color_folder, out=tmp_path / "d", **{**TINY, **probe, "img_size": 40}
    )  # preprocessing changes
    assert "computed and cached" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "features").glob("*.safetensors"))) == 3


def test_feature_key_depends_on_weights_not_on_the_head(tmp_path):
    from graft.data.discover import discover
    from graft.data.feature_cache import feature_key

    spec = discover(make_color_images(tmp_path / "d", per_class=2))
    model = create_model("test_resnet", 3, pretrained=False).model
    head = {"fc.weight", "fc.bias"}
    key = feature_key(model, head, "test_resnet", {"input_size": (3, 32, 32)}, {"train": spec.train})
    with torch.no_grad():
        model.fc.weight.add_(1)  # the head does not shape the features
    assert feature_key(model, head, "test_resnet", {"input_size": (3, 32, 32)}, {"train": spec.train}) == key
    with torch.no_grad():
        model.conv1[0].weight.add_(1e-3)
    assert feature_key(model, head, "test_resnet", {"input_size": (3, 32, 32)}, {"train": spec.train}) != key


def test_cached_training_gives_the_full_models_results(color_folder, tmp_path, monkeypatch):
    """The val accuracy measured on cached features is what the bundled full model scores on the images."""
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    run = graft.train(
        color_folder, out=tmp_path / "r", **{**TINY, "strategy": "linear-probe", "cache_features": "on"}
    )
    from graft.data.discover import discover

    val = discover(run.path / "split.csv").val
    predictions = graft.load(run.path).predict([s.path for s in val])
    classes = run.classes
    accuracy = sum(p.label == classes[s.label] for p, s in zip(predictions, val)) / len(val)
    assert accuracy == pytest.approx(run.best_metric)


def test_lr_range_test_touches_neither_the_model_nor_the_random_streams(color_folder, tmp_path):
    """prepare() with lr=auto must leave the model and every RNG exactly as prepare() with a fixed LR."""
    from graft.config import resolve_config
    from graft.data.discover import discover
    from graft.training.prepare import prepare

    spec = discover(color_folder)

    def prepared_and_next_draws(lr):
        cfg = resolve_config(overrides={**TINY, "data": color_folder, "lr": lr, "strategy": "full"})
        prepared = prepare(cfg, spec)
        return prepared, (torch.rand(4).tolist(), random.random(), np.random.rand())

    auto, draws_auto = prepared_and_next_draws("auto")
    fixed, draws_fixed = prepared_and_next_draws(0.01)
    assert draws_auto == draws_fixed
    for key, value in fixed.model.state_dict().items():
        assert torch.equal(auto.model.state_dict()[key], value), key
    result = auto.lr_find
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1] and len(result.lrs) > 20
    assert auto.cfg.optim.lr == float(f"{result.suggestion:.2g}")
    assert result.plot(tmp_path / "lr.png").stat().st_size > 1000


def test_lr_auto_end_to_end(color_folder, tmp_path):
    run = graft.train(color_folder, out=tmp_path / "r", **{**TINY, "lr": "auto", "epochs": 1})
    assert isinstance(run.config.optim.lr, float) and (run.path / "lr_find.png").is_file()
