"""The scikit-learn-like Python face: graft.evaluate / export / check / resume, Run.metrics and its repr,
and what a predictor's predict / predict_proba take (paths, folders, PIL, numpy, torch)."""

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

import graft
import graft.exporting.formats  # noqa: F401  the subpackage imported first: graft.export is still the function
from graft.data.check import DataReport
from graft.data.decode import load_image
from graft.errors import GraftError
from graft.predict.common import expand_inputs, text_inputs
from test_cli import graft as graft_cli


def _val_images(run) -> list[Path]:
    from graft.data.discover import discover

    return [s.path for s in discover(run.path / "split.csv").val]


def _same(a, b) -> None:
    """Two prediction lists agree: labels exactly, scores to float32 noise."""
    assert [p.label for p in a] == [p.label for p in b]
    for x, y in zip(a, b):
        assert [s for _, s in x.top_k] == pytest.approx([s for _, s in y.top_k], abs=1e-6)


def test_evaluate_returns_what_graft_eval_writes(trained_run, tmp_path: Path):
    metrics = graft.evaluate(trained_run, out=tmp_path / "api", device="cpu")
    cli = graft_cli("eval", trained_run.path, "--out", tmp_path / "cli", "--device", "cpu", "--json")
    assert cli.returncode == 0, cli.stderr
    written = json.loads(cli.stdout)
    assert (
        metrics["accuracy"]
        == written["accuracy"]
        == json.loads((tmp_path / "api" / "metrics.json").read_text())["accuracy"]
    )
    assert set(metrics) == set(written) and metrics["num_samples"] == written["num_samples"] == 9
    assert metrics["loss"] == pytest.approx(written["loss"], abs=1e-6)
    assert (tmp_path / "api" / "index.html").is_file()
    with pytest.raises(GraftError, match="not found"):
        graft.evaluate(tmp_path / "nope")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript_and_onnx(trained_run, tmp_path: Path):
    path = graft.export(trained_run, format="TorchScript", out=tmp_path / "model.pt")
    assert path == tmp_path / "model.pt" and path.is_file()
    assert json.loads((tmp_path / "model.pt.json").read_text())["classes"] == trained_run.classes
    scripted = torch.jit.load(str(path))
    assert scripted(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(GraftError, match="unknown export format"):
        graft.export(trained_run.path, format="onnnx", out=tmp_path / "x")

    onnx_file = graft.export(trained_run.path, out=tmp_path / "onnx" / "model.onnx")  # format="onnx"
    assert onnx_file.is_file() and (tmp_path / "onnx" / "model.onnx.json").is_file()
    served = graft.load(onnx_file, backend="onnx")
    paths = _val_images(trained_run)
    arrays = [np.asarray(load_image(p)) for p in paths]
    _same(served.predict(arrays, top_k=3), served.predict(paths, top_k=3))
    probs = served.predict_proba(np.stack(arrays))  # a batch NxHxWxC
    assert probs.shape == (len(paths), 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    torch_probs = graft.load(trained_run.path, device="cpu").predict_proba(paths)
    np.testing.assert_allclose(probs, torch_probs, atol=1e-5)


def test_check_returns_the_report_and_prints_nothing(color_folder: Path, capsys):
    report = graft.check(color_folder, val_split=0.25, seed=1)
    assert isinstance(report, DataReport) and capsys.readouterr().out == ""
    assert report.modality == "image" and report.classes == ["blue", "green", "red"]
    assert report.counts == {
        "train": dict.fromkeys(report.classes, 12),
        "val": dict.fromkeys(report.classes, 4),
    }
    assert report.broken == [] and report.leaks == [] and report.balance == "none"

    (color_folder / "red" / "zero.png").write_bytes(b"")
    report = graft.check(color_folder, verbose=True)
    out = capsys.readouterr().out
    assert report.broken == [(str(color_folder / "red" / "zero.png"), "empty file (0 bytes)")]
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) == 48
    assert "check  " in out and "skip" in out and "zero.png" in out and "warning" in out
    with pytest.raises(GraftError, match="unreadable"):
        graft.check(color_folder, strict=True)
    with pytest.raises(GraftError, match="not found"):
        graft.check(color_folder / "nope")


def test_resume_trains_one_more_epoch(trained_run, tmp_path: Path):
    copy = shutil.copytree(trained_run.path, tmp_path / "run")
    epochs = trained_run.config.train.epochs
    with pytest.raises(GraftError, match="cannot resume .* optim.lr"):
        graft.resume(copy, lr=0.5, console=Console(file=io.StringIO()))
    run = graft.resume(copy, epochs=epochs + 1, console=Console(file=io.StringIO()))
    assert run.path == copy and run.config.train.epochs == epochs + 1
    assert [row["epoch"] for row in run.history][-2:] == [epochs, epochs + 1]
    assert f"/{epochs + 1}, 3 classes)" in repr(run)
    assert run.metrics == {
        k: v
        for k, v in json.loads((copy / "report" / "metrics.json").read_text()).items()
        if isinstance(v, (int, float))
    }


def test_run_metrics_and_repr(trained_run, tmp_path: Path):
    written = json.loads((trained_run.path / "report" / "metrics.json").read_text())
    metrics = trained_run.metrics
    assert metrics["accuracy"] == written["accuracy"] and metrics["macro_f1"] == written["macro_f1"]
    assert all(isinstance(v, (int, float)) for v in metrics.values())  # numbers, no per-class tables
    assert "per_class" not in metrics and "about" not in metrics
    assert re.fullmatch(
        rf"Run\('{re.escape(str(trained_run.path))}', best val_acc \d+\.\d% at epoch {trained_run.best_epoch}/3, "
        r"3 classes\)",
        repr(trained_run),
    ), repr(trained_run)
    assert f"{trained_run.best_metric:.1%}" in repr(trained_run)

    # no report (or one older than the bundle): the best epoch's history row
    copy = shutil.copytree(trained_run.path, tmp_path / "run")
    run = dataclasses.replace(trained_run, path=copy)
    report = copy / "report" / "metrics.json"
    stamp = (copy / "model" / "graft.json").stat().st_mtime
    os.utime(report, (stamp - 60, stamp - 60))
    best = run.metrics
    assert best["epoch"] == run.best_epoch and best["val_acc"] == run.best_metric and "accuracy" not in best
    shutil.rmtree(copy / "report")
    assert run.metrics == best

    empty = dataclasses.replace(
        trained_run, path=tmp_path / "empty", history=[], best_metric=None, best_epoch=None
    )
    assert (
        empty.metrics == {}
        and repr(empty) == f"Run({str(tmp_path / 'empty')!r}, no finished epoch, 3 classes)"
    )
    loss = dataclasses.replace(
        trained_run, config=trained_run.config.model_copy(deep=True), best_metric=0.01234, stopped="SIGTERM"
    )
    loss.config.checkpoint.monitor = "val_loss"
    assert "best val_loss 0.0123 at epoch" in repr(loss) and repr(loss).endswith(
        "3 classes, stopped: SIGTERM)"
    )


def test_predict_takes_arrays_tensors_folders_and_pil(trained_run):
    predictor = graft.load(trained_run, device="cpu")
    paths = _val_images(trained_run)
    on_paths = predictor.predict(paths, top_k=3)
    images = [load_image(p) for p in paths]
    arrays = [np.asarray(img) for img in images]  # HxWx3 uint8

    _same(predictor.predict(images, top_k=3), on_paths)  # PIL
    _same(predictor.predict(arrays, top_k=3), on_paths)  # numpy HWC uint8
    _same(predictor.predict(np.stack(arrays), top_k=3), on_paths)  # a numpy batch NHWC
    chw = [torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays]
    _same(predictor.predict(chw, top_k=3), on_paths)  # torch CHW uint8
    _same(predictor.predict([t.permute(1, 2, 0) for t in chw], top_k=3), on_paths)  # torch HWC uint8
    _same(predictor.predict(torch.stack(chw).float() / 255, top_k=3), on_paths)  # torch NCHW float 0-1
    assert predictor.predict(arrays[0])[0].label == on_paths[0].label  # one array, not a list of rows
    assert predictor.predict(chw[0])[0].input == "<image>"
    gray = np.asarray(images[0].convert("L"))  # HxW
    _same(predictor.predict(gray, top_k=3), predictor.predict(Image.fromarray(gray), top_k=3))

    folder = Path(trained_run.config.data.path)
    in_folder = predictor.predict(folder, top_k=3)
    expanded = expand_inputs([folder])
    assert [p.input for p in in_folder] == [str(p) for p in expanded] and len(in_folder) == 48
    _same(in_folder, predictor.predict(expanded, top_k=3))
    assert predictor.predict([str(folder / "red"), paths[0]])[-1].input == str(paths[0])  # mixed, as given

    probs = predictor.predict_proba(paths)
    assert probs.shape == (len(paths), 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert [predictor.classes[i] for i in probs.argmax(axis=1)] == [p.label for p in on_paths]
    np.testing.assert_allclose(probs, predictor.predict_proba(chw), atol=1e-6)
    assert predictor.predict_proba([]).shape == (0, 3)


@pytest.mark.parametrize(
    "bad, words",
    [
        (42, "cannot predict on an int"),
        ([b"bytes"], "cannot predict on a bytes"),
        (np.zeros(7), "shape (7,)"),
        (np.zeros((8, 8, 5), dtype=np.uint8), "1, 3 or 4 channels"),
        (np.zeros((8, 8), dtype=bool), "uint8 (0-255) or float (0-1), not bool (a mask: a.astype"),
        (torch.randn(3, 8, 8), "float pixels must be in [0, 1]"),
        (np.full((8, 8), 300), "0-255, these run from 300 to 300 (16-bit? scale them"),
    ],
)
def test_unsupported_inputs_are_one_line_errors(trained_run, bad, words: str):
    predictor = graft.load(trained_run.path, device="cpu")
    with pytest.raises(GraftError) as err:
        predictor.predict(bad)
    assert words in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GraftError):
        predictor.predict_proba(bad)


def test_text_inputs():
    assert text_inputs("one text") == ["one text"] and text_inputs(("a", "b")) == ["a", "b"]
    with pytest.raises(GraftError, match="item 1.*a string or a list of strings"):
        text_inputs(["fine", 3])


def test_import_graft_stays_light_and_export_is_the_function(tmp_path: Path):
    code = (
        "import sys, graft, numpy as np\n"
        "from graft.predict.common import image_inputs\n"
        "assert len(image_inputs(np.zeros((4, 4, 3), np.uint8))) == 1\n"
        "assert callable(graft.load) and callable(graft.train)  # graft.load(..., backend='onnx') needs no torch\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert callable(graft.export) and callable(graft.evaluate) and callable(graft.check)\n"
        "assert callable(graft.resume)\n"
        "import graft.exporting.formats\n"
        "assert callable(graft.export) and graft.exporting.formats.FORMATS\n"
        "from graft import export\n"
        "assert export is graft.export\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_text_predictors_predict_proba(tiny_bert, tmp_path: Path):
    from conftest import make_review_csv

    data = make_review_csv(tmp_path / "reviews.csv", per_class=12)
    run = graft.train(data, model=str(tiny_bert), out=tmp_path / "run", strategy="full", epochs=1, batch_size=8,
                      quiet=True, **{"optim.warmup_epochs": 0}, console=Console(file=io.StringIO()))  # fmt: skip
    texts = ["a superb and moving film", "awful, dull plot", "the cast was fine"]
    predictor = graft.load(run)
    probs = predictor.predict_proba(texts)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    predictions = predictor.predict(texts, top_k=2)
    assert [predictor.classes[i] for i in probs.argmax(axis=1)] == [p.label for p in predictions]
    assert predictor.predict_proba("one text").shape == (1, 2)
    with pytest.raises(GraftError, match="a text model takes a string or a list of strings"):
        predictor.predict([Path("not_a_text.txt")])

    graft.export(run, format="onnx")
    served = graft.load(run, backend="onnx")
    np.testing.assert_allclose(served.predict_proba(texts), probs, atol=1e-5)
