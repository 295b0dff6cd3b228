"""Multi-label and regression bundles, end to end: they load in plain transformers and plain timm and give
graft's own predictions (a sigmoid per label; the number itself), `graft predict` prints and --json writes
them, and their ONNX exports predict the same on onnxruntime.

Four tiny runs, one per modality and task, trained for one epoch on generated data (the models need not be
good: every check compares two ways of computing the same outputs)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import graft
from conftest import TINY
from graft.errors import GraftError
from graft.exporting.formats import export
from graft.exporting.verify import compare
from graft.predict.common import Decoder, MultiLabelPrediction, RegressionPrediction
from graft.predict.load import load_predictor
from graft.tasks import MultiLabel, Regression, SingleLabel, from_meta
from test_cli import graft as graft_cli

COLORS = {"red": (200, 40, 40), "green": (40, 180, 40), "blue": (40, 40, 200)}
TEXT = {"strategy": "full", "epochs": 1, "batch_size": 8, "lr": 5e-3, "quiet": True, "optim.warmup_epochs": 0}
TOPICS = {"acting": ["cast", "actor", "performance"], "music": ["score", "song", "soundtrack"],
          "story": ["plot", "ending", "script"]}  # fmt: skip
POSITIVE = ["great", "wonderful", "superb"]


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _two_color_images(root: Path, n: int = 36) -> Path:
    """path,labels: each image is one or two colors (top and bottom half); its labels, the colors in it."""
    rng = np.random.default_rng(0)
    names, rows = list(COLORS), []
    root.mkdir(parents=True)
    for i in range(n):
        present = sorted({names[i % 3], names[(i * 7 // 3) % 3]})
        top, bottom = COLORS[present[0]], COLORS[present[-1]]
        pixels = np.concatenate([rng.normal(top, 30, (12, 24, 3)), rng.normal(bottom, 30, (12, 24, 3))])
        path = root / f"{i:03d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
        rows.append([str(path), ";".join(present)])
    return _write(root.parent / "colors.csv", ["path", "labels"], rows)


def _brightness_images(root: Path, n: int = 36) -> Path:
    """path,target: gray images whose target is their brightness on a 0-100 scale (not whole numbers)."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        level = float(rng.uniform(20, 230))
        path = root / f"{i:03d}.png"
        Image.fromarray(np.clip(rng.normal(level, 10, (24, 24, 3)), 0, 255).astype(np.uint8)).save(path)
        rows.append([str(path), f"{level / 2.55:.2f}"])
    return _write(root.parent / "brightness.csv", ["path", "target"], rows)


def _topic_texts(path: Path, n: int = 60) -> Path:
    """text,labels: reviews mentioning one or two topics; their labels, the topics."""
    rng, names, rows = random.Random(0), list(TOPICS), []
    for i in range(n):
        present = sorted({names[i % 3], names[(i * 7 // 3) % 3]})
        words = [rng.choice(TOPICS[t]) for t in present] + rng.sample(["the", "was", "really", "and"], 2)
        rng.shuffle(words)
        rows.append([" ".join(words), ";".join(present)])
    return _write(path, ["text", "labels"], rows)


def _rated_texts(path: Path, n: int = 60) -> Path:
    """text,target: the more praise words, the higher the rating."""
    rng, rows = random.Random(1), []
    for i in range(n):
        k = i % 4
        words = [rng.choice(POSITIVE) for _ in range(k)] + ["the", "film", "was", "long"][: 4 - k]
        rows.append([" ".join(words), f"{2 + 2.5 * k + rng.uniform(-0.5, 0.5):.2f}"])
    return _write(path, ["text", "target"], rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert) -> dict[str, Path]:
    """{"image-multi", "image-regression", "text-multi", "text-regression"} -> the run folder."""
    root = tmp_path_factory.mktemp("tasks")
    tiny = {**TINY, "epochs": 1}
    text = {**TEXT, "model": str(tiny_bert)}
    made = {
        "image-multi": graft.train(_two_color_images(root / "two_colors"), out=root / "im", **tiny),
        "image-regression": graft.train(_brightness_images(root / "gray"), out=root / "ir", **tiny),
        "text-multi": graft.train(_topic_texts(root / "topics.csv"), out=root / "tm", **text),
        "text-regression": graft.train(_rated_texts(root / "ratings.csv"), out=root / "tr", **text),
    }
    return {name: run.path for name, run in made.items()}


def _meta(run: Path) -> dict:
    return json.loads((run / "model" / "graft.json").read_text())


def _val_inputs(run: Path) -> list[str]:
    with (run / "split.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    column = "path" if "path" in rows[0] else "text"
    return [r[column] for r in rows if r["split"] == "val"]


SOME_TEXTS = ["the plot and the soundtrack", "great great wonderful", "an actor", "the film was long"]


# (1) text bundles in plain transformers


def test_multi_label_text_bundle_is_a_plain_transformers_multi_label_model(runs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bundle, meta = runs["text-multi"] / "model", _meta(runs["text-multi"])
    model = AutoModelForSequenceClassification.from_pretrained(str(bundle)).eval()
    assert model.config.problem_type == "multi_label_classification"
    assert (
        [model.config.id2label[i] for i in range(model.config.num_labels)] == meta["classes"] == list(TOPICS)
    )
    tokenizer = AutoTokenizer.from_pretrained(str(bundle))
    with torch.inference_mode():
        logits = model(**tokenizer(SOME_TEXTS, padding=True, return_tensors="pt")).logits
    plain = logits.sigmoid().numpy()

    predictor = graft.load(runs["text-multi"], device="cpu")
    assert (predictor.modality, predictor.task) == ("text", "multi-label")
    np.testing.assert_allclose(predictor.predict_proba(SOME_TEXTS), plain, atol=1e-6)
    assert not np.allclose(plain.sum(1), 1.0)  # sigmoids, not a softmax
    thresholds = meta["task_spec"]["thresholds"]
    for prediction, row in zip(predictor.predict(SOME_TEXTS), plain, strict=True):
        assert isinstance(prediction, MultiLabelPrediction)
        above = {c for c, p, t in zip(meta["classes"], row, thresholds, strict=True) if p >= t}
        assert set(prediction.labels) == above and prediction.value == prediction.labels
        assert list(prediction.scores) == meta["classes"]
        assert [prediction.scores[c] for c in meta["classes"]] == pytest.approx(row.tolist(), abs=1e-6)


def test_regression_text_bundle_outputs_the_number_in_plain_transformers(runs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bundle, meta = runs["text-regression"] / "model", _meta(runs["text-regression"])
    model = AutoModelForSequenceClassification.from_pretrained(str(bundle)).eval()
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    tokenizer = AutoTokenizer.from_pretrained(str(bundle))
    with torch.inference_mode():
        logits = model(**tokenizer(SOME_TEXTS, padding=True, return_tensors="pt")).logits
    assert logits.shape == (len(SOME_TEXTS), 1)

    predictor = graft.load(bundle, device="cpu")
    assert (predictor.modality, predictor.task) == ("text", "regression")
    predictions = predictor.predict(SOME_TEXTS)
    assert all(isinstance(p, RegressionPrediction) and p.scores == {} for p in predictions)
    assert [p.value for p in predictions] == pytest.approx(logits[:, 0].tolist(), abs=1e-5)
    # The scaling is folded into the head: the plain model's output is on the ratings' scale (2..10 here).
    spec = meta["task_spec"]
    assert abs(float(logits.mean()) - spec["train_mean"]) < 3 * spec["train_std"]
    with pytest.raises(GraftError, match="regression model has no probabilities"):
        predictor.predict_proba(SOME_TEXTS)


# (2) image bundles in plain timm


def _plain_timm(run: Path, inputs: list[str]) -> torch.Tensor:
    """The bundle's logits in plain timm, preprocessed from the bundle's own pretrained_cfg (as test_bundle)."""
    from graft.data.images import load_image

    plain = timm.create_model(f"local-dir:{run / 'model'}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=plain))
    with torch.inference_mode():
        return plain(torch.stack([transform(load_image(Path(p))) for p in inputs]))


def test_multi_label_image_bundle_in_plain_timm_gives_graft_probabilities(runs):
    run, meta = runs["image-multi"], _meta(runs["image-multi"])
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["label_names"] == meta["classes"] == ["blue", "green", "red"]
    assert meta["task_spec"]["name"] == "multi-label" and len(meta["task_spec"]["thresholds"]) == 3
    images = _val_inputs(run)
    plain = _plain_timm(run, images).sigmoid().numpy()

    predictor = graft.load(run, device="cpu")
    assert (predictor.modality, predictor.task) == ("image", "multi-label")
    np.testing.assert_allclose(predictor.predict_proba(images), plain, atol=1e-6)
    cut = np.array(meta["task_spec"]["thresholds"])
    for prediction, row in zip(predictor.predict(images), plain, strict=True):
        assert set(prediction.labels) == {c for c, on in zip(meta["classes"], row >= cut, strict=True) if on}
        assert prediction.labels == sorted(prediction.labels, key=lambda c: -prediction.scores[c])


def test_regression_image_bundle_in_plain_timm_outputs_the_number(runs):
    run = runs["image-regression"]
    images = _val_inputs(run)
    plain = _plain_timm(run, images)
    assert plain.shape == (len(images), 1)
    predictor = graft.load(run, device="cpu")
    assert (predictor.modality, predictor.task) == ("image", "regression")
    assert [p.value for p in predictor.predict(images)] == pytest.approx(plain[:, 0].tolist(), abs=1e-4)


# (3) graft predict, end to end


@pytest.mark.parametrize("which", ["image-multi", "text-multi"])
def test_predict_cli_multi_label(runs, which):
    run, meta = runs[which], _meta(runs[which])
    inputs = _val_inputs(run)[:3] if which == "image-multi" else SOME_TEXTS
    result = graft_cli("predict", run, *inputs, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["input"] for r in rows] == inputs and all(set(r) == {"input", "value", "scores"} for r in rows)
    expected = [p.to_dict() for p in graft.load(run, device="cpu").predict(inputs)]
    for row, want in zip(rows, expected, strict=True):
        assert row["value"] == want["value"] and list(row["scores"]) == meta["classes"]
        assert list(row["scores"].values()) == pytest.approx(list(want["scores"].values()), abs=1e-5)

    table = graft_cli("predict", run, *inputs, "--top-k", "2")
    assert table.returncode == 0, table.stderr
    assert "labels above threshold" in table.stdout and "below threshold" in table.stdout
    for row in rows:
        if row["value"]:
            assert ", ".join(f"{c} {row['scores'][c]:.2f}" for c in row["value"]) in table.stdout
        else:
            top = max(row["scores"], key=row["scores"].get)
            assert f"(none above threshold; top: {top} {row['scores'][top]:.2f})" in table.stdout


@pytest.mark.parametrize("which", ["image-regression", "text-regression"])
def test_predict_cli_regression(runs, which):
    run = runs[which]
    inputs = _val_inputs(run)[:3] if which == "image-regression" else SOME_TEXTS
    result = graft_cli("predict", run, *inputs, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    values = [p.value for p in graft.load(run, device="cpu").predict(inputs)]
    assert [r["scores"] for r in rows] == [{}] * len(inputs)
    assert [r["value"] for r in rows] == pytest.approx(values, rel=1e-5)

    table = graft_cli("predict", run, *inputs)
    assert table.returncode == 0, table.stderr
    assert "target" in table.stdout and "probability" not in table.stdout
    from graft.cli.predict import format_number

    assert all(format_number(v) in table.stdout for v in values)
    refused = graft_cli("predict", run, *inputs, "--top-k", "3")
    assert refused.returncode == 2 and "regression model" in refused.stderr


def test_format_number():
    from graft.cli.predict import format_number

    assert [format_number(v) for v in (23.4127, 0.0012346, 250000.4, -7.25, 0.0)] == [
        "23.41", "0.001235", "250000", "-7.250", "0"]  # fmt: skip


# (4) ONNX export and predict --backend onnx


@pytest.mark.parametrize("which", ["image-multi", "image-regression", "text-multi", "text-regression"])
def test_onnx_export_predicts_as_torch(runs, which):
    run, meta = runs[which], _meta(runs[which])
    result = export(run, "onnx")
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["task_spec"] == meta["task_spec"]
    multi = meta["task_spec"]["name"] == "multi-label"
    assert sidecar["verification"]["compared"] == ("probability" if multi else "target")
    assert ("sigmoid" if multi else "itself") in sidecar["output"]["meaning"]

    inputs = _val_inputs(run)[:4] if which.startswith("image") else SOME_TEXTS
    torch_predictor, onnx_predictor = graft.load(run, device="cpu"), load_predictor(run, backend="onnx")
    assert (onnx_predictor.modality, onnx_predictor.task) == (torch_predictor.modality, torch_predictor.task)
    ours, theirs = torch_predictor.predict(inputs), onnx_predictor.predict(inputs)
    assert [type(p) for p in theirs] == [type(p) for p in ours]
    if multi:
        assert [p.labels for p in theirs] == [p.labels for p in ours]
        np.testing.assert_allclose(onnx_predictor.predict_proba(inputs), torch_predictor.predict_proba(inputs),
                                   atol=1e-5)  # fmt: skip
    else:
        assert [p.value for p in theirs] == pytest.approx([p.value for p in ours], abs=1e-3)
        with pytest.raises(GraftError, match="no probabilities"):
            onnx_predictor.predict_proba(inputs)

    cli = graft_cli("predict", run, *inputs, "--backend", "onnx", "--json")
    assert cli.returncode == 0, cli.stderr
    values = [r["value"] for r in json.loads(cli.stdout)]
    assert values == ([p.labels for p in ours] if multi else pytest.approx([p.value for p in ours], abs=1e-3))


def test_export_cli_says_how_to_read_the_outputs(runs, tmp_path):
    multi = graft_cli("export", runs["image-multi"], "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert multi.returncode == 0, multi.stderr
    assert "max |probability diff|" in multi.stdout and "same labels above threshold on" in multi.stdout
    assert "output" in multi.stdout and "sigmoid" in multi.stdout and "task_spec.thresholds" in multi.stdout
    numbers = graft_cli(
        "export", runs["text-regression"], "--format", "torchscript", "--out", tmp_path / "r.pt"
    )
    assert numbers.returncode == 0, numbers.stderr
    assert "max |target diff|" in numbers.stdout and "in its own units" in numbers.stdout


# The pieces: decoding without torch agrees with graft.tasks; verification per task


@pytest.mark.parametrize(
    "task", [SingleLabel(), MultiLabel(num_labels=3, thresholds=[0.3, 0.5, 0.9]), Regression(0.0, 1.0, "age")]
)
def test_numpy_decoder_agrees_with_the_task(task):
    classes = ["age"] if task.name == "regression" else ["a", "b", "c"]
    meta = {"classes": classes, "task_spec": task.to_meta()}
    logits = torch.randn(16, len(classes), generator=torch.Generator().manual_seed(0)) * 3
    want = from_meta(meta).decode(logits, classes)
    got = Decoder.from_meta(meta).decode([str(i) for i in range(16)], logits.numpy(), top_k=len(classes))
    for mine, theirs in zip(got, want, strict=True):
        if task.name == "multi-label":
            assert set(mine.value) == set(theirs.value)
        else:
            assert mine.value == pytest.approx(theirs.value)
        assert mine.scores == pytest.approx(theirs.scores, abs=1e-6)


def test_verification_reads_what_each_task_predicts():
    torch.manual_seed(0)
    eager = torch.nn.Linear(4, 3).eval()
    cases = [(torch.randn(6, 4),)]
    spec = {"name": "multi-label", "thresholds": [0.5, 0.5, 0.5]}
    check = compare(eager, lambda x: eager(x), cases, "6 random inputs", "onnx", task_spec=spec)
    assert check.agree == check.n == 7 and check.compared == "probability"
    flipped = lambda x: eager(x) * torch.tensor([-1.0, 1.0, 1.0])  # noqa: E731  (label 0 on the other side)
    with pytest.raises(GraftError, match="same labels above threshold on 0/7 rows"):
        compare(eager, flipped, cases, "6 random inputs", "onnx", task_spec=spec)

    number = torch.nn.Linear(4, 1).eval()
    off = lambda x: number(x) + 1e-3  # noqa: E731  (an error of 0.001 in the target's units)
    spread = {"name": "regression", "target": "price", "train_std": 100.0}
    assert compare(number, off, cases, "6 random inputs", "onnx", task_spec=spread).compared == "price"
    with pytest.raises(GraftError, match="does not match"):  # a target with std 1: 0.001 is too much
        compare(number, off, cases, "6 random inputs", "onnx", task_spec={**spread, "train_std": 1.0})
