"""graft.train(model=<nn.Module>): a timm, torchvision, transformers or custom module object trains, checkpoints,
resumes and bundles; the object itself is never changed (models/module_input.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

import graft
from graft.errors import GraftError
from graft.models.module_input import model_object
from test_cli import graft as graft_cli

FAST = {
    "strategy": "full",  # fine-tuning epochs for certain (auto may stop at the solved head on easy data)
    "img_size": 32,
    "epochs": 2,
    "batch_size": 8,
    "lr": 1e-2,
    "quiet": True,
    "optim.warmup_epochs": 0,
    "num_workers": 0,
}


class SmallCNN(nn.Module):
    """A custom module: no timm or torchvision behind it, a final Linear for the head."""

    def __init__(self, classes: int = 10, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = nn.Sequential(
            nn.Conv2d(width, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.block2 = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, classes)
        return self.fc(self.pool(self.block2(self.block1(self.stem(x)))).flatten(1))


def _snapshot(net: nn.Module) -> dict:
    """Everything about the object that training must leave as it was."""
    return {
        "tensors": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "requires_grad": {k: p.requires_grad for k, p in net.named_parameters()},
        "training": [m.training for m in net.modules()],
        "modules": [(n, type(m)) for n, m in net.named_modules()],
    }


def _assert_unchanged(net: nn.Module, before: dict) -> None:
    after = _snapshot(net)
    assert after["modules"] == before["modules"] and after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for key, value in before["tensors"].items():
        assert torch.equal(after["tensors"][key], value), key


def _images(folder: Path, n: int = 6) -> list[Path]:
    return sorted(folder.rglob("*.png"))[:: max(1, 48 // n)][:n]


def _rgb(path: Path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_timm_object_trains_as_its_architecture_and_its_bundle_loads_in_timm(color_folder, tmp_path):
    import timm
    from timm.data import create_transform, resolve_data_config

    net = timm.create_model("test_efficientnet", pretrained=False)
    before = _snapshot(net)
    run = graft.train(color_folder, model=net, out=tmp_path / "run", **{**FAST, "epochs": 1})
    _assert_unchanged(net, before)
    assert run.config.model.name == "test_efficientnet.r160_in1k"  # arch and tag: the same preprocessing
    assert run.config.model.module == "timm.models.efficientnet:EfficientNet"
    meta = json.loads((run.bundle / "graft.json").read_text())
    assert (meta["family"], meta["arch"]) == ("timm", "test_efficientnet")
    assert meta["pretrained_weights"] == "the timm.models.efficientnet:EfficientNet object given as model="

    plain = timm.create_model(f"local-dir:{run.bundle}", pretrained=True).eval()  # no graft code
    transform = create_transform(**resolve_data_config({}, model=plain))
    images = _images(color_folder)
    with torch.inference_mode():
        logits = plain(torch.stack([transform(_rgb(p)) for p in images]))
    np.testing.assert_allclose(graft.load(run).predict_proba(images), logits.softmax(-1).numpy(), atol=1e-5)

    # Another architecture as model=: the line says the fix (the run needs no object).
    with pytest.raises(GraftError, match=r"trained test_efficientnet.r160_in1k; .*: resume without model="):
        graft.resume(run, model=timm.create_model("test_resnet"))
    resumed = graft.resume(run, epochs=2, console=Console(file=io.StringIO()))  # by name: no object needed
    assert resumed.history[-1]["epoch"] == 2


def test_a_torchvision_object_is_resolved_to_its_builder(color_folder, tmp_path):
    import torchvision
    from safetensors.torch import load_file

    net = torchvision.models.mobilenet_v3_small(weights=None)
    before = _snapshot(net)
    run = graft.train(color_folder, model=net, out=tmp_path / "run", **{**FAST, "epochs": 1})
    _assert_unchanged(net, before)
    assert (run.config.model.name, run.config.model.module) == (
        "tv:mobilenet_v3_small",
        "torchvision.models.mobilenetv3:MobileNetV3",
    )
    plain = torchvision.models.get_model("mobilenet_v3_small", num_classes=3)
    plain.load_state_dict(load_file(str(run.bundle / "model.safetensors")))  # strict: torchvision's names
    predictor = graft.load(run)
    images = _images(color_folder)
    batch = torch.stack([predictor.transform(_rgb(p)) for p in images])
    with torch.inference_mode():
        expected = plain.eval()(batch).softmax(-1).numpy()
    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-5)


def test_an_object_no_name_rebuilds_is_a_custom_module():
    import timm
    import torchvision

    assert model_object(timm.create_model("test_resnet", pretrained=False)).kind == "timm"
    # Settings a name would not rebuild (drop-path, dropout): trained as the module it is, not as the name.
    assert model_object(timm.create_model("test_resnet", drop_path_rate=0.1)).name == (
        "module:timm.models.resnet:ResNet"
    )
    assert model_object(torchvision.models.mobilenet_v3_small(dropout=0.5)).kind == "module"
    assert model_object(SmallCNN()).name == f"module:{__name__}:SmallCNN"


def test_a_custom_module_freezes_checkpoints_resumes_and_loads_with_the_object(color_folder, tmp_path):
    from safetensors.torch import load_file

    from graft.strategies.groups import layer_groups
    from graft.strategies.stages import stages_from_config

    net = SmallCNN()
    before = _snapshot(net)
    quiet = Console(file=io.StringIO())
    run = graft.train(color_folder, model=net, out=tmp_path / "run", **{**FAST, "train_groups": 1})
    _assert_unchanged(net, before)
    assert (run.config.model.name, run.config.model.module) == (
        f"module:{__name__}:SmallCNN",
        f"{__name__}:SmallCNN",
    )
    meta = json.loads((run.bundle / "graft.json").read_text())
    assert (meta["family"], meta["module"]) == ("module", f"{__name__}:SmallCNN")

    # The strategy froze all but the top group: those weights are the object's, to the bit.
    reference = model_object(SmallCNN(), resolve=False).module
    reference.fc = nn.Linear(16, 3)
    groups = layer_groups(reference)
    trained = {n for g in stages_from_config(run.config, len(groups), head_solved=True)[-1].trainable
               for n in groups[g].param_names}  # fmt: skip
    final = load_file(str(run.bundle / "model.safetensors"))
    frozen = [n for n, _ in reference.named_parameters() if n not in trained]
    assert frozen and trained - {"fc.weight", "fc.bias"}
    assert all(torch.equal(final[n], before["tensors"][n]) for n in frozen)
    assert any(not torch.equal(final[n], before["tensors"][n]) for n in trained if not n.startswith("fc."))

    # Resume: the object's architecture is needed, and checked against the checkpoint.
    with pytest.raises(
        GraftError, match=r"trained from a Python module .*SmallCNN.*model=SmallCNN\(\.\.\.\)"
    ) as err:
        graft.resume(run)
    assert "\n" not in str(err.value)
    assert "model=SmallCNN(...)" in _one_line_error(graft_cli("resume", run.path))
    with pytest.raises(GraftError, match=r"tensor stem\.0\.weight is \(8, 3, 3, 3\) in the saved weights"):
        graft.resume(run, model=SmallCNN(width=4))
    resumed = graft.resume(run, model=net, epochs=3, console=quiet)
    assert resumed.history[-1]["epoch"] == 3
    _assert_unchanged(net, before)

    # Load: weights into a copy of the given object; without one, one line saying how.
    with pytest.raises(
        GraftError, match=r"holds the weights of a Python module .*graft\.load\(.*model=SmallCNN"
    ):
        graft.load(run)
    for command in (
        ["predict", run.path, _images(color_folder)[0]],
        ["eval", run.path],
        ["export", run.path, "--format", "onnx"],
    ):
        assert "model=SmallCNN(...)" in _one_line_error(graft_cli(*command))
    predictor = graft.load(run, model=SmallCNN())
    plain = SmallCNN()
    plain.fc = nn.Linear(16, 3)
    plain.load_state_dict(load_file(str(run.bundle / "model.safetensors")))
    images = _images(color_folder)
    with torch.inference_mode():
        expected = plain.eval()(torch.stack([predictor.transform(_rgb(p)) for p in images])).softmax(-1)
    np.testing.assert_allclose(predictor.predict_proba(images), expected.numpy(), atol=1e-5)
    with pytest.raises(GraftError, match="tensor stem.0.weight"):
        graft.load(run, model=SmallCNN(width=4))

    metrics = graft.evaluate(run, model=SmallCNN())  # the run's validation split, through the same loader
    assert (
        metrics["num_samples"] == (run.path / "split.csv").read_text().count(",val\n")
        and "accuracy" in metrics
    )
    pytest.importorskip("onnxruntime")
    graft.export(run, format="onnx", model=SmallCNN())
    served = graft.load(run, backend="onnx")  # the exported graph needs no object
    np.testing.assert_allclose(served.predict_proba(images), expected.numpy(), atol=1e-4)

    # A config from this run cannot stand in for the object.
    with pytest.raises(GraftError, match="model.module: .*pass the object as model="):
        graft.train(color_folder, config=run.path / "config.yaml", out=tmp_path / "again", quiet=True)


def test_a_transformers_object_trains_and_bundles_as_transformers(tiny_bert, tmp_path):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from conftest import make_review_csv

    encoder = AutoModel.from_pretrained(str(tiny_bert))
    before = _snapshot(encoder)
    data = make_review_csv(tmp_path / "reviews.csv", per_class=12)
    run = graft.train(data, model=encoder, out=tmp_path / "run", strategy="full", epochs=1, batch_size=8,
                      quiet=True, **{"optim.warmup_epochs": 0})  # fmt: skip
    _assert_unchanged(encoder, before)
    assert (run.config.model.name, run.config.model.module) == (
        str(tiny_bert),
        "transformers.models.bert.modeling_bert:BertModel",
    )
    texts = ["a superb and moving film", "awful, dull plot"]
    plain = AutoModelForSequenceClassification.from_pretrained(str(run.bundle)).eval()
    tokens = AutoTokenizer.from_pretrained(str(run.bundle))(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = plain(**tokens).logits.softmax(-1).numpy()
    np.testing.assert_allclose(graft.load(run).predict_proba(texts), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "overrides", "message"),
    [
        (SmallCNN(), {"weights": "w.safetensors"}, "a model object brings its own weights"),
        (SmallCNN(), {"pretrained": False}, "a model object starts from its own weights"),
        (SmallCNN(), {"model.drop_rate": 0.1}, "a model object keeps its own dropout"),
        ({"fc.weight": torch.zeros(2, 2)}, {}, "model: got a builtins.dict; .* or an nn.Module object; for a state_dict"),
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)), {}, "has no nn.Linear to use as the classification head"),
        (nn.Linear(2, 2), {}, "has no nn.Linear to use as the classification head"),
    ],
    ids=["weights", "not-pretrained", "drop-rate", "state-dict", "no-linear", "only-a-linear"],
)  # fmt: skip
def test_what_an_object_cannot_be_given_with_is_one_line(color_folder, tmp_path, model, overrides, message):
    with pytest.raises(GraftError, match=message) as err:
        graft.train(color_folder, model=model, out=tmp_path / "run", **{**FAST, **overrides})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_module_that_returns_no_logits_is_refused_before_anything_is_written(color_folder, tmp_path):
    class TwoOutputs(SmallCNN):
        def forward(self, x):
            return super().forward(x), x

    with pytest.raises(GraftError, match=r"returns a tuple for 2 images; .*\(batch, 3\) logits"):
        graft.train(color_folder, model=TwoOutputs(), out=tmp_path / "run", **FAST)
    assert not (tmp_path / "run").exists()


def test_a_custom_bundle_without_its_object_names_every_call_that_takes_one(tmp_path):
    # graft.evaluate, graft.export and `graft eval`/`graft export` load the bundle as graft.load does: the
    # line that refuses them must not send the user to graft.load alone.
    from graft.models.module_input import load_object_bundle

    with pytest.raises(GraftError) as err:
        load_object_bundle(tmp_path, {"family": "module", "module": "pkg.nets:Net"}, None)
    message = str(err.value)
    assert "graft.load(" in message and "model=Net(...)" in message
    assert "graft.evaluate and graft.export take the same model=" in message and "\n" not in message
