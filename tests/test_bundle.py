"""The bundle must load without graft and give graft's own predictions."""

import json
from pathlib import Path

import pytest
import timm
import torch

import graft
from conftest import TINY, checkpoint
from graft.data.images import load_image
from graft.errors import GraftError
from graft.predict.images import expand_inputs


def _val_images(run) -> list[Path]:
    from graft.data.discover import discover

    return [s.path for s in discover(run.path / "split.csv").val]


def test_bundle_loads_in_plain_timm_with_identical_logits(trained_run):
    plain = timm.create_model(f"local-dir:{trained_run.bundle}", pretrained=True).eval()
    config = json.loads((trained_run.bundle / "config.json").read_text())
    assert config["num_classes"] == 3 and config["label_names"] == ["blue", "green", "red"]

    # Preprocess with plain timm too, from the bundle's own pretrained_cfg.
    data_config = timm.data.resolve_data_config({}, model=plain)
    assert data_config["input_size"] == (3, 32, 32)  # the trained size, not test_resnet's default 160
    transform = timm.data.create_transform(**data_config)
    images = [load_image(p) for p in _val_images(trained_run)]
    with torch.inference_mode():
        plain_logits = plain(torch.stack([transform(im) for im in images]))

    predictor = graft.load(trained_run.path, device="cpu")
    with torch.inference_mode():
        graft_logits = predictor.model(torch.stack([predictor.transform(im) for im in images]))
    assert torch.equal(plain_logits, graft_logits)


def test_bundle_is_the_best_checkpoint(trained_run):
    from safetensors.torch import load_file

    best = checkpoint(trained_run.path, "best").model
    bundle = load_file(str(trained_run.bundle / "model.safetensors"))
    assert set(bundle) == set(best) and all(torch.equal(bundle[k], best[k]) for k in best)


def test_graft_metadata(trained_run):
    meta = json.loads((trained_run.bundle / "graft.json").read_text())
    assert meta["classes"] == ["blue", "green", "red"] and meta["family"] == "timm"
    assert "tag" not in json.loads((trained_run.bundle / "config.json").read_text())["pretrained_cfg"]
    assert meta["preprocessing"]["input_size"] == [3, 32, 32]
    assert meta["metrics"]["val_acc"] == trained_run.best_metric
    assert meta["graft_version"] == graft.__version__


def test_predictor_gets_the_colors_right(trained_run):
    predictor = graft.load(trained_run.bundle)
    paths = _val_images(trained_run)
    predictions = predictor.predict(paths, top_k=3)
    assert all(p.label == Path(p.input).parent.name for p in predictions)
    assert all(len(p.top_k) == 3 and abs(sum(s for _, s in p.top_k) - 1) < 1e-4 for p in predictions)
    assert predictor.predict([load_image(paths[0])])[0].label == predictions[0].label  # PIL input too
    assert predictor.predict(str(paths[0]))[0].label == predictions[0].label  # one path, not its characters


def test_torchvision_bundle_loads_with_plain_torchvision(color_folder: Path, tmp_path: Path):
    import torchvision
    from safetensors.torch import load_file

    run = graft.train(
        color_folder, out=tmp_path / "tv", **{**TINY, "model": "tv:mobilenet_v3_small", "epochs": 1}
    )
    meta = json.loads((run.bundle / "graft.json").read_text())
    plain = torchvision.models.get_model(meta["arch"], num_classes=meta["num_classes"]).eval()
    plain.load_state_dict(load_file(str(run.bundle / "model.safetensors")))
    predictor = graft.load(run.bundle)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(plain(x), predictor.model(x))


def test_fine_tune_further_from_a_bundle(trained_run, color_folder: Path, tmp_path: Path):
    """--model RUN_DIR starts from the bundle's weights (same classes: head kept)."""
    from graft.models.registry import create_model

    built = create_model(str(trained_run.path), num_classes=3)
    predictor = graft.load(trained_run.bundle)
    for key, value in predictor.model.state_dict().items():
        assert torch.equal(built.model.state_dict()[key], value)
    assert built.data_config["input_size"] == (3, 32, 32)


def test_expand_inputs_and_errors(trained_run, tmp_path: Path):
    folder = trained_run.config.data.path
    assert len(expand_inputs([folder])) == 48
    with pytest.raises(GraftError, match="input not found"):
        expand_inputs([tmp_path / "nope.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraftError, match="has no images"):
        expand_inputs([tmp_path / "empty"])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(GraftError, match="cannot read image .*bad.png"):
        graft.load(trained_run.bundle).predict([tmp_path / "bad.png"])
    with pytest.raises(GraftError, match="not a graft bundle"):
        graft.load(tmp_path)
