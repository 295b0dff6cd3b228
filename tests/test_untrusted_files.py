"""Damaged or untrusted files are named in one line and never loaded: a bundle that does not match its
MANIFEST.json, weights that are pickles, a malformed checkpoint manifest, a !!python tag in --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli import graft


def _copy_bundle(trained_run, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained_run.bundle, tmp_path / "bundle"))


def _flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: _flip_byte(b / "model.safetensors"), "model.safetensors does not match its checksum"),
        (lambda b: _truncate(b / "model.safetensors"), "model.safetensors is .* bytes, the manifest says"),
        (lambda b: (b / "config.json").unlink(), "config.json is missing"),
        (lambda b: (b / "MANIFEST.json").write_text("[]"), "MANIFEST.json is not a manifest"),
    ],
    ids=["bit-flip", "truncated", "file-missing", "manifest-not-a-mapping"],
)
@pytest.mark.parametrize("command", ["predict", "eval", "export"])
def test_a_damaged_bundle_is_named_and_never_loaded(trained_run, tmp_path, damage, message, command):
    import re

    bundle = _copy_bundle(trained_run, tmp_path)
    damage(bundle)
    image = next(Path(trained_run.config.data.path).rglob("*.png"))
    args = {"predict": ["predict", bundle, image], "eval": ["eval", bundle, "--data", trained_run.config.data.path,
            "--out", tmp_path / "report"], "export": ["export", bundle, "--format", "torchscript"]}[command]  # fmt: skip
    result = graft(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(f"bundle .* is damaged: {message}", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_graft_load_verifies_the_bundle_and_an_intact_copy_loads(trained_run, tmp_path):
    import graft
    from graft.errors import GraftError

    bundle = _copy_bundle(trained_run, tmp_path)
    assert graft.load(bundle).classes == trained_run.classes  # the manifest matches a faithful copy
    _flip_byte(bundle / "model.safetensors")
    with pytest.raises(GraftError, match="is damaged: model.safetensors does not match its checksum"):
        graft.load(bundle)


@pytest.mark.parametrize(
    "weights",
    [b"", b"\x80\x04not a safetensors file", None],
    ids=["empty", "garbage", "a-pickle-named-safetensors"],
)
def test_a_bundle_without_manifest_whose_weights_are_not_weights_is_one_line(trained_run, tmp_path, weights):
    import pickle

    bundle = _copy_bundle(trained_run, tmp_path)
    (bundle / "MANIFEST.json").unlink()  # as written before bundles had one: nothing to verify against
    (bundle / "model.safetensors").write_bytes(weights if weights is not None else pickle.dumps({"w": [1.0]}))
    result = graft("predict", bundle, next(Path(trained_run.config.data.path).rglob("*.png")))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot load the bundle {bundle}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "manifest", ["[]", "{}", '{"model.safetensors": 3}'], ids=["list", "empty", "bad-entry"]
)
def test_a_checkpoint_with_a_malformed_manifest_falls_back(tmp_path, manifest):
    import torch

    from graft.runs.store import CheckpointStore

    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(1, {"w": torch.zeros(2)}, {"optimizer": {}}, {"progress": {"step": 1}})
    newest = store.save(2, {"w": torch.ones(2)}, {"optimizer": {}}, {"progress": {"step": 2}})
    (tmp_path / "checkpoints" / newest / "MANIFEST.json").write_text(manifest)
    report: list[str] = []
    assert store.latest_good(report).name == "step-000001"
    assert "step-000002 is damaged" in report[0]


@pytest.mark.parametrize(
    ("weights", "message"),
    [("pickle.pt", "refused to unpickle it, nothing in it was run (Trying to load unsupported GLOBAL posix.system"),
     ("pickle.safetensors", "is not a readable safetensors file")],
)  # fmt: skip
def test_weights_that_are_a_pickle_are_refused_in_one_line(tmp_path, color_folder, weights, message):
    import torch

    marker = tmp_path / "RAN"
    torch.save({"w": _Marker(marker)}, tmp_path / weights)
    result = graft("train", color_folder, "--model", "test_resnet", "--weights", tmp_path / weights,
                   "--img-size", "32", "--out", tmp_path / "run")  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not marker.exists()
    assert not (tmp_path / "run").exists()


def test_a_python_tag_in_set_is_refused_not_run(tmp_path, color_folder):
    marker = tmp_path / "RAN"
    result = graft(
        "train", color_folder, "--set", f'optim.lr=!!python/object/apply:os.system ["touch {marker}"]'
    )
    assert (
        result.returncode == 2 and "--set optim.lr:" in result.stderr and "not a YAML value" in result.stderr
    )
    assert not marker.exists()


class _Marker:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))
