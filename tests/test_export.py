"""Exports round-trip numerically; the NumPy preprocessing is timm's; `graft predict --backend onnx` agrees
with the PyTorch path; export errors are one line and leave nothing behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform

import graft
from conftest import TINY, make_color_images
from graft.errors import GraftError
from graft.exporting.formats import FORMATS, export
from graft.predict.preprocess import preprocess
from test_cli import assert_user_error
from test_cli import graft as graft_cli


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_export_round_trips(trained_run, tmp_path: Path, fmt: str):
    result = export(trained_run.path, fmt, tmp_path / "out" / FORMATS[fmt].filename)
    assert result.path.is_file() and result.check.max_abs_diff < 1e-4
    assert result.check.inputs == "6 validation images" and result.check.batch_sizes == [6, 1]
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["classes"] == ["blue", "green", "red"] and sidecar["input"]["shape"] == [
        "batch",
        3,
        32,
        32,
    ]
    assert (
        sidecar["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and sidecar["preprocessing"]["crop_pct"] == 0.95
    )
    assert sidecar["verification"]["agree"] == sidecar["verification"]["n"] == 7

    # loaded independently of graft, on a batch size the export never saw
    model = graft.load(trained_run.path, device="cpu").model
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        expected = model(x)
        if fmt == "onnx":
            import onnxruntime as ort

            got = torch.from_numpy(ort.InferenceSession(str(result.path)).run(None, {"input": x.numpy()})[0])
        elif fmt == "pt2":
            got = torch.export.load(str(result.path)).module()(x)
        elif fmt == "torchscript":
            got = torch.jit.load(str(result.path))(x)
        else:
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(result.path), "pt") as f:
                assert json.loads(f.metadata()["graft"])["classes"] == ["blue", "green", "red"]
            fresh = graft.load(trained_run.path, device="cpu").model
            fresh.load_state_dict(load_file(str(result.path)))
            got = fresh(x)
    assert (got - expected).abs().max().item() < 1e-4
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_a_mismatching_export_fails_and_writes_nothing(trained_run, tmp_path: Path):
    with pytest.raises(
        GraftError, match=r"onnx export does not match the PyTorch model .* nothing was written"
    ):
        export(trained_run.path, "onnx", tmp_path / "m.onnx", atol=1e-12)  # ORT's kernels differ by ~1e-7
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["center", "squash", "border"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_numpy_preprocessing_is_timms_eval_transform(mode: str, interpolation: str):
    rng = np.random.default_rng(0)
    for input_size, crop_pct in (((3, 32, 32), 0.95), ((3, 224, 224), 0.875), ((3, 48, 64), 1.0)):
        config = {"input_size": input_size, "interpolation": interpolation, "mean": (0.485, 0.456, 0.406),
                  "std": (0.229, 0.224, 0.225), "crop_pct": crop_pct, "crop_mode": mode}  # fmt: skip
        transform = create_transform(**config, is_training=False)
        for width, height in ((24, 24), (300, 200), (31, 77)):
            img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            np.testing.assert_array_equal(preprocess(img, config), transform(img).numpy())


def test_predict_with_onnx_backend_matches_torch(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=8)
    run = graft.train(
        data, out=tmp_path / "run", **{**TINY, "epochs": 1, "lr": 3e-3}
    )  # some wrong answers too
    missing = graft_cli("predict", run.path, data / "red", "--backend", "onnx")
    assert_user_error(missing, "no ONNX export", f"graft export {run.path} --format onnx")

    exported = graft_cli("export", run.path, "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    assert "max |logit diff|" in exported.stdout and (run.bundle / "model.onnx.json").is_file()
    by = {}
    for backend in ("torch", "onnx"):
        result = graft_cli("predict", run.path, data, "--backend", backend, "--json", "--top-k", "3")
        assert result.returncode == 0, result.stderr
        by[backend] = json.loads(result.stdout)
    assert len(by["onnx"]) == 24
    assert [p["label"] for p in by["onnx"]] == [p["label"] for p in by["torch"]]
    for a, b in zip(by["onnx"], by["torch"]):
        assert [x["score"] for x in a["top_k"]] == pytest.approx([x["score"] for x in b["top_k"]], abs=1e-5)

    # the ONNX path needs neither torch nor timm at inference time
    code = ("import sys, graft; "  # through graft.load, as a user serves it
            f"p = graft.load({str(run.path)!r}, backend='onnx').predict([{str(data / 'red' / '000.png')!r}]); "
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'torch imported'; print(p[0].label)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == by["onnx"][[p["input"] for p in by["onnx"]].index(str(data / "red" / "000.png"))]["label"]
    )

    # a damaged copy of the export is named in one line, never run; so is an unreadable sidecar
    onnx_file = run.bundle / "model.onnx"
    whole = onnx_file.read_bytes()
    onnx_file.write_bytes(whole[: len(whole) // 2])
    assert_user_error(graft_cli("predict", run.path, data / "red", "--backend", "onnx"), "model.onnx",
                      "truncated or damaged copy", "graft export")  # fmt: skip
    onnx_file.write_bytes(whole)
    sidecar = run.bundle / "model.onnx.json"
    sidecar.write_text(sidecar.read_text()[:40])
    assert_user_error(graft_cli("predict", run.path, data / "red", "--backend", "onnx"), "model.onnx.json",
                      "export again")  # fmt: skip


def test_export_cli_errors_are_one_line(trained_run, tmp_path: Path):
    from graft.cli.export import FORMAT_NAMES

    assert FORMAT_NAMES == tuple(FORMATS)  # the CLI checks names before importing torch
    assert_user_error(graft_cli("export", trained_run.path, "--format", "onyx"), "unknown export format 'onyx'",
                      "did you mean: onnx")  # fmt: skip
    assert_user_error(graft_cli("export", tmp_path / "missing", "--format", "onnx"), "not found")
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "empty-run" / "config.yaml").write_text("model: {}\n")
    assert_user_error(graft_cli("export", tmp_path / "empty-run", "--format", "onnx"), "has no bundle yet")
    assert sorted(p.name for p in (tmp_path / "empty-run").iterdir()) == ["config.yaml"]
