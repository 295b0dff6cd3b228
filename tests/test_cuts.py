"""Stages that start from a cut: the frozen prefix runs once, from the cache, and training is the same.

find_cut locates each stage's cut in real timm/torchvision models and verifies it; a gradual run whose
stages start from cached activations ends where the same run through the images ends, also under torchrun;
a killed run resumed inside such a stage equals the uninterrupted one."""

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors import safe_open

import graft
from conftest import TINY, checkpoint, make_color_images
from graft.strategies.cuts import Suffix, find_cut
from graft.strategies.groups import layer_groups
from test_resume import RUN, assert_same_run
from test_resume import graft as graft_cli


def _cuts(model: torch.nn.Module, size: int = 64) -> dict[str, str | None]:
    groups = layer_groups(model)
    images = torch.randn(3, 3, size, size)
    found = {}
    for k in range(1, len(groups)):
        cut = find_cut(model, {n for g in groups[k:] for n in g.param_names}, images)
        found[groups[k].name] = cut.output if cut else None
    return found


def test_cuts_are_found_from_the_call_order_and_verified():
    torch.manual_seed(0)
    assert _cuts(timm.create_model("resnet18", num_classes=3)) == {
        "layer1": "maxpool",  # conv1, bn1, act1 and maxpool (no parameters) form the prefix
        "layer2": "layer1",
        "layer3": "layer2",
        "layer4": "layer3",
        "head": "global_pool",
    }
    lite = _cuts(timm.create_model("efficientnet_lite0", num_classes=3))
    assert lite["blocks.3"] == "blocks.2" and lite["head"] == "global_pool"
    assert all(v is not None for v in lite.values())
    tv = _cuts(torchvision.models.mobilenet_v3_small(num_classes=3))
    assert tv["features.5.block"] == "features.4"
    # ViT adds its position embedding outside any module: no cut verifies, so no stage starts from one.
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=3, img_size=32)
    assert set(_cuts(vit, 32).values()) == {None}


def test_suffix_reproduces_the_model_and_trains_only_the_top():
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3)
    groups = layer_groups(model)
    trainable = {n for g in groups[3:] for n in g.param_names}
    images = torch.randn(4, 3, 64, 64)
    cut = find_cut(model, trainable, images)
    captured = []
    handle = model.get_submodule(cut.output).register_forward_hook(lambda *a: captured.append(a[2]))
    model.eval()
    with torch.no_grad():
        expected = model(images)
    handle.remove()
    suffix = Suffix(model, cut)
    with torch.no_grad():
        assert torch.allclose(suffix(captured[0]), expected, atol=1e-5)
    assert "forward" not in vars(model.conv1)  # the prefix is bypassed only during the call
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    suffix(captured[0]).sum().backward()
    assert all((p.grad is not None) == (n in trainable) for n, p in model.named_parameters())


def _gradual(data: Path, out: Path, **settings):
    return graft.train(data, out=out, **{**TINY, "strategy": "gradual", "unfreeze_at": [1, 2], "epochs": 3,
                                         "strategy.unfreeze_groups": 2, "data.augment": {"enabled": False},
                                         "train.deterministic": True, **settings})  # fmt: skip


def test_gradual_from_cached_cuts_ends_where_training_through_the_images_ends(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    data = make_color_images(tmp_path / "colors")
    torch.manual_seed(1)
    cached = _gradual(data, tmp_path / "cached", quiet=False)
    header = capsys.readouterr().out
    assert "from epoch 2 start after layer2, from epoch 3 start after maxpool" in header
    through = _gradual(data, tmp_path / "images", cache_features="off")
    mine, theirs = checkpoint(cached.path).model, checkpoint(through.path).model
    for key, value in theirs.items():  # the same training, up to float rounding of batched convolutions
        assert torch.allclose(mine[key].float(), value.float(), atol=1e-4, rtol=1e-3), key
    for a, b in zip(cached.history, through.history):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
    start = layer_groups(graft.load(cached.path).model)[0].param_names  # never unfrozen: untouched
    fresh = checkpoint(through.path).model
    assert all(torch.equal(mine[n], fresh[n]) for n in start)


def test_with_augmentation_validation_runs_above_the_frozen_part(tmp_path, monkeypatch, capsys):
    """Augmented training images go through the whole model; the validation images never change, so each
    epoch validates from the stored output of the frozen part: the same numbers as through the images."""
    from safetensors.torch import save_file

    from graft.models.registry import create_model

    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    data = make_color_images(tmp_path / "colors")
    torch.manual_seed(1)  # a weights file: the head is solved first, and gradual unfreezes from epoch 0
    save_file(
        create_model("test_resnet", 3, pretrained=False).model.state_dict(), str(tmp_path / "w.safetensors")
    )
    settings = {
        "weights": tmp_path / "w.safetensors",
        "unfreeze_at": [0, 1],
        "data.augment": {"enabled": True},
    }
    stored = _gradual(data, tmp_path / "stored", quiet=False, **settings)
    header = capsys.readouterr().out
    assert (
        "from epoch 1 validation starts after layer2, from epoch 2 validation starts after maxpool" in header
    )
    through = _gradual(data, tmp_path / "images", cache_features="off", **settings)
    mine, theirs = checkpoint(stored.path).model, checkpoint(through.path).model
    assert all(torch.equal(mine[k], v) for k, v in theirs.items())  # training is the same, bitwise
    for a, b in zip(stored.history, through.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4) and a["val_acc"] == b["val_acc"]


@pytest.mark.slow  # three real training processes (~50 s); tests/test_resume.py covers resume in make test
def test_killed_in_a_stage_that_starts_from_a_cut_then_resumed_equals_uninterrupted(tmp_path):
    data = make_color_images(tmp_path / "colors")
    cut_run = [*RUN, "--set", "data.augment.enabled=false"]
    env_cache = ["--set", f"data.cache_dir={tmp_path / 'cache'}"]
    reference = tmp_path / "reference"
    done = graft_cli("train", data, *cut_run, *env_cache, "--out", reference)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    killed = graft_cli("train", data, *cut_run, *env_cache, "--out", run, fault="step@9")  # in epoch 2
    assert killed.returncode != 0
    resumed = graft_cli("resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run, reference)


@pytest.mark.slow  # two torchrun launches of 2 processes (~60 s)
def test_under_torchrun_stages_from_cuts_train_as_through_the_images(tmp_path):
    """DDP wraps the suffix as it wraps the model: 2 processes from cuts end where 2 processes through the
    images end (rank 0 fills the cache, the other loads it)."""
    from test_distributed import TORCHRUN
    from test_distributed import run as launch

    data = make_color_images(tmp_path / "colors")
    common = ["train", data, "--model", "test_resnet", "--no-pretrained", "--img-size", "32", "--epochs", "3",
              "--batch-size", "4", "--lr", "0.01", "--num-workers", "0", "--device", "cpu", "--strategy", "gradual",
              "--unfreeze-at", "1,2", "--set", "strategy.unfreeze_groups=2", "--set", "optim.warmup_epochs=0",
              "--set", "log.sinks=csv", "--set", "train.deterministic=true", "--set", "data.augment.enabled=false",
              "-q"]  # fmt: skip
    runs = {}
    for name, extra in (("cuts", []), ("images", ["--cache-features", "off"])):
        done = launch([*TORCHRUN, *common, *extra, "--out", tmp_path / name], tmp_path / "cache")
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = checkpoint(tmp_path / name)
    (entry,) = (tmp_path / "cache" / "features").glob("*.safetensors")  # only the run from cuts filled one
    with safe_open(str(entry), "pt") as stored:
        assert {"cut:layer2/train_x", "cut:maxpool/val_x", "head/train_x"} <= set(stored.keys())
    mine, theirs = runs["cuts"].model, runs["images"].model
    for key, value in theirs.items():
        assert torch.allclose(mine[key].float(), value.float(), atol=1e-4, rtol=1e-3), key
    losses = [[h["val_loss"] for h in r.state["progress"]["history"]] for r in runs.values()]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_text_cuts_fall_between_encoder_layers_and_reproduce_the_model(tiny_bert):
    """A transformer's layers run in a loop of modules: the cut below layer k replays each text's hidden
    states (padded, with its attention mask) and gives the model's own logits."""
    from transformers import AutoTokenizer

    from graft.models.text_encoder import build_text

    torch.manual_seed(0)
    built, tokenizer = build_text(str(tiny_bert), 2, ["a", "b"])
    model = built.model.eval()
    torch.nn.init.normal_(model.hf.classifier.weight)  # a head that is not zero, so logits differ
    groups = layer_groups(model)  # embeddings, layer.0, layer.1, pooler, head
    batch = dict(AutoTokenizer.from_pretrained(str(tiny_bert))(
        ["short one", "a somewhat longer text than the first"], padding=True, return_tensors="pt"))  # fmt: skip
    top_layer = {n for g in groups[2:] for n in g.param_names}  # layer.1 and above
    cut = find_cut(model, top_layer, batch)
    assert cut.output.endswith("encoder.layer.0") and cut.per_token and cut.shape == (32,)
    captured = []
    handle = model.get_submodule(cut.output).register_forward_hook(lambda *a: captured.append(a[2]))
    with torch.no_grad():
        logits = model(batch)
    handle.remove()
    replay = Suffix(model, cut)({"hidden": captured[0], "attention_mask": batch["attention_mask"]})
    torch.testing.assert_close(replay, logits, rtol=1e-4, atol=1e-5)
    assert find_cut(model, {n for g in groups[-2:] for n in g.param_names}, batch) is None  # the pooler alone


def test_text_stages_from_cuts_train_as_through_the_tokens(tiny_bert, tmp_path):
    """A text run whose stage trains the top layer from stored hidden states ends where the same run
    through the tokens ends (cut activations are stored per text, without padding)."""
    from conftest import make_review_csv

    data = make_review_csv(tmp_path / "reviews.csv", per_class=12)
    settings = {"model": str(tiny_bert), "strategy": "discriminative", "train_groups": 2, "epochs": 2,
                "batch_size": 8, "lr": 5e-3, "quiet": True, "log": "csv", "optim.warmup_epochs": 0,
                "data.cache_dir": tmp_path / "cache"}  # fmt: skip
    cuts = graft.train(data, out=tmp_path / "cuts", **settings)
    tokens = graft.train(data, out=tmp_path / "tokens", **{**settings, "cache_features": "off"})
    mine, theirs = checkpoint(cuts.path).model, checkpoint(tokens.path).model
    for key, value in theirs.items():
        assert torch.allclose(mine[key], value, atol=1e-4, rtol=1e-3), key
    assert [h["val_loss"] for h in cuts.history] == pytest.approx(
        [h["val_loss"] for h in tokens.history], rel=1e-4
    )
