from pathlib import Path

import pytest
import yaml

from graft.config import Config, parse_set, resolve_config, save_config, valid_keys
from graft.errors import GraftError


def test_defaults_validate_and_round_trip_through_yaml(tmp_path: Path):
    cfg = resolve_config()
    assert cfg == Config()
    save_config(cfg, tmp_path / "c.yaml")
    assert resolve_config(tmp_path / "c.yaml") == cfg


def test_precedence_defaults_then_yaml_then_overrides(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("optim: {lr: 0.5, weight_decay: 0.2}\ntrain: {epochs: 7}\n")
    cfg = resolve_config(tmp_path / "c.yaml", {"lr": 0.01, **parse_set(["train.batch_size=3"])})
    assert cfg.optim.lr == 0.01  # override beats YAML
    assert cfg.optim.weight_decay == 0.2  # YAML beats default
    assert cfg.train.epochs == 7
    assert cfg.train.batch_size == 3
    assert cfg.train.seed == 0  # default kept


def test_set_values_parse_as_yaml_scalars_and_lists():
    cfg = resolve_config(
        overrides=parse_set(
            ["optim.lr=3e-4", "log.sinks=csv", "optim.clip_grad_norm=null", "data.augment.scale=[0.3, 1.0]"]
        )
    )
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.log.sinks == ["csv"]
    assert cfg.optim.clip_grad_norm is None
    assert cfg.data.augment.scale == (0.3, 1.0)


def test_section_dict_sets_each_key():
    cfg = resolve_config(overrides={"data.augment": {"hflip": 0.0, "scale": (0.8, 1.0)}})
    assert cfg.data.augment.hflip == 0.0 and cfg.data.augment.scale == (0.8, 1.0)


def test_unknown_override_key_names_close_match():
    with pytest.raises(GraftError, match=r"unknown config key 'optim.lrr'.*did you mean: optim.lr"):
        resolve_config(overrides={"optim.lrr": 1})


def test_unknown_yaml_key_lists_valid_keys_of_its_section(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("train:\n  epochz: 3\n")
    with pytest.raises(GraftError) as err:
        resolve_config(tmp_path / "c.yaml")
    message = str(err.value)
    assert "train.epochz" in message and "did you mean: epochs" in message
    assert "batch_size" in message and "\n" not in message


def test_wrong_type_and_range_name_the_key():
    with pytest.raises(GraftError, match=r"train.epochs.*'abc'"):
        resolve_config(overrides={"epochs": "abc"})
    with pytest.raises(GraftError, match=r"data.val_split"):
        resolve_config(overrides={"val_split": 1.5})
    with pytest.raises(GraftError, match=r"train.device"):
        resolve_config(overrides={"device": "tpu"})


@pytest.mark.parametrize("bad", ["noequals", "=3"])
def test_malformed_set(bad: str):
    with pytest.raises(GraftError, match="key=value"):
        parse_set([bad])


def test_bad_yaml_files(tmp_path: Path):
    with pytest.raises(GraftError, match="not found"):
        resolve_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(GraftError, match="mapping"):
        resolve_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("train: {epochs: [\n")
    with pytest.raises(GraftError, match="not valid YAML"):
        resolve_config(tmp_path / "broken.yaml")


def test_every_valid_key_is_settable():
    defaults = Config().model_dump(mode="json")
    for key in valid_keys():
        node = defaults
        for part in key.split("."):
            node = node[part]
        resolve_config(overrides={key: node})  # setting each key to its default validates


def test_saved_config_is_plain_yaml(tmp_path: Path):
    save_config(resolve_config(overrides={"data": tmp_path}), tmp_path / "c.yaml")
    loaded = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert loaded["data"]["path"] == str(tmp_path)


def test_unknown_top_level_section_lists_the_sections(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("optimizer:\n  lr: 0.1\n")
    with pytest.raises(
        GraftError,
        match=r"unknown key 'optimizer' \(did you mean: optim\?\); valid keys: data, model, strategy, optim",
    ):
        resolve_config(tmp_path / "c.yaml")
