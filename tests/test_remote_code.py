"""graft never runs code from a model folder (auto_map, trust_remote_code=False), and says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_review_csv
from test_cli import graft

EVIL = """
from pathlib import Path
Path(__file__).with_name("RAN").write_text("the folder's code ran")
from transformers import BertConfig
class EvilConfig(BertConfig):
    model_type = "graft-evil"
"""


def plant_remote_code(folder: Path, config_name: str = "config.json") -> Path:
    """Make `folder`'s config point transformers at a module in the folder (which writes a marker if run)."""
    (folder / "evil.py").write_text(EVIL)
    path = folder / config_name
    config = json.loads(path.read_text()) if path.is_file() else {}
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.Evil"}
    if config_name == "config.json":
        config["model_type"] = "graft-evil"  # unknown to transformers: only the folder's code could load it
    path.write_text(json.dumps(config))
    return folder / "RAN"


@pytest.mark.parametrize("config_name", ["config.json", "tokenizer_config.json"])
def test_train_refuses_a_model_folder_that_maps_to_its_own_code(tmp_path, tiny_bert, config_name):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    marker = plant_remote_code(model, config_name)
    data = make_review_csv(tmp_path / "reviews.csv", per_class=8)
    result = graft("train", data, "--model", model, "--epochs", "1", "--out", tmp_path / "run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "auto_map" in result.stderr and str(model / config_name) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_predict_refuses_a_bundle_that_maps_to_its_own_code(tmp_path, tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bundle = tmp_path / "bundle"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2).save_pretrained(
        str(bundle)
    )
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(str(bundle))
    meta = {"task": "text-classification", "classes": ["negative", "positive"], "num_classes": 2,
            "preprocessing": {"max_length": 32}}  # fmt: skip
    (bundle / "graft.json").write_text(json.dumps(meta))
    assert graft("predict", bundle, "a fine film").returncode == 0  # the same bundle, untouched, predicts
    marker = plant_remote_code(bundle)
    result = graft("predict", bundle, "a fine film")
    assert result.returncode == 2 and "auto_map" in result.stderr, result.stdout + result.stderr
    assert not marker.exists()


def test_bundles_never_carry_auto_map(tmp_path, tiny_bert):
    from transformers import AutoConfig

    from graft.exporting.bundle import write_bundle
    from graft.models.text_encoder import build_text

    built, tokenizer = build_text(str(tiny_bert), 2, ["a", "b"])
    built.model.hf.config.auto_map = {"AutoConfig": "elsewhere.Config"}  # as if a config had carried one in
    out = write_bundle(tmp_path / "model", built, built.model, ["a", "b"], {}, {}, tokenizer)
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    assert AutoConfig.from_pretrained(str(out)).model_type == "bert"
