"""Evaluation: metrics against a hand check, which data is evaluated, the report folder, `graft eval`."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

import graft
from conftest import TINY, make_color_images
from graft.data.text_tables import TextSample
from graft.errors import GraftError
from graft.evaluation.data import data_at
from graft.evaluation.gallery import sample_html, sample_markdown
from graft.evaluation.metrics import classification_metrics, reliability_bins, top_k_for
from graft.evaluation.report import SECTIONS
from test_cli import assert_user_error
from test_cli import graft as graft_cli

# Six samples, three classes; softmax(log p) = p, so these are the model's probabilities.
# true  probabilities (a, b, c)  top-1      confidence bin (15 bins of 1/15)
PROBS = [
    ("a", [0.90, 0.05, 0.05]),  # a right   0.90 -> bin 13
    ("a", [0.50, 0.30, 0.20]),  # a right   0.50 -> bin 7
    ("a", [0.30, 0.50, 0.20]),  # b wrong   0.50 -> bin 7   (a is 2nd: top-2 right)
    ("b", [0.15, 0.70, 0.15]),  # b right   0.70 -> bin 10
    ("b", [0.20, 0.10, 0.70]),  # c wrong   0.70 -> bin 10  (b is 3rd: top-2 wrong)
    ("c", [0.05, 0.05, 0.90]),  # c right   0.90 -> bin 13
]
CLASSES = ["a", "b", "c"]


def test_metrics_equal_a_hand_check():
    logits = torch.tensor([p for _, p in PROBS]).log()
    targets = torch.tensor([CLASSES.index(t) for t, _ in PROBS])
    m = classification_metrics(logits, targets, CLASSES)

    assert m["num_samples"] == 6 and m["num_classes"] == 3
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["top_k"] == 2 and m["top_k_accuracy"] == pytest.approx(5 / 6)
    # confusion (rows true, columns predicted): a -> a,a,b; b -> b,c; c -> c
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # a: P 2/2, R 2/3, F1 0.8;  b: P 1/2, R 1/2, F1 0.5;  c: P 1/2, R 1/1, F1 2/3
    expected = {"a": (1.0, 2 / 3, 0.8, 3), "b": (0.5, 0.5, 0.5, 2), "c": (0.5, 1.0, 2 / 3, 1)}
    for row in m["per_class"]:
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            expected[row["class"]]
        )
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)  # 0.6556
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)  # 0.6778
    # ECE: bin 7 acc 1/2 conf 0.5 -> 0; bin 10 acc 1/2 conf 0.7 -> 0.2 x 2/6; bin 13 acc 1 conf 0.9 -> 0.1 x 2/6
    assert m["ece"] == pytest.approx(0.2 * 2 / 6 + 0.1 * 2 / 6, abs=1e-6)  # 0.1
    nll = [0.9, 0.5, 0.3, 0.7, 0.1, 0.9]  # p(true class) per sample
    assert m["loss"] == pytest.approx(-sum(map(math.log, nll)) / 6, abs=1e-6)  # 0.7945
    assert m["most_confused"] == [
        {"true": "a", "predicted": "b", "count": 1, "share_of_true": pytest.approx(1 / 3)},
        {"true": "b", "predicted": "c", "count": 1, "share_of_true": pytest.approx(1 / 2)},
    ]
    filled = {i: b for i, b in enumerate(m["reliability"]) if b["count"]}
    assert sorted(filled) == [7, 10, 13]
    assert (filled[10]["count"], filled[10]["accuracy"], filled[10]["confidence"]) == pytest.approx(
        (2, 0.5, 0.7)
    )
    json.dumps(m)  # metrics.json-ready: plain numbers, lists and dicts only


def test_reliability_bins_give_torchmetrics_ece():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=generator) * 2
    targets = torch.randint(0, 7, (500,), generator=generator)
    bins = reliability_bins(logits.softmax(1), targets)
    ece = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / 500
    assert ece == pytest.approx(classification_metrics(logits, targets, list("abcdefg"))["ece"], abs=1e-5)


def test_top_k_is_five_or_fewer_than_the_classes():
    assert [top_k_for(n) for n in (2, 3, 6, 100)] == [1, 2, 5, 5]


def test_eval_data_prefers_the_most_held_out_split(tmp_path: Path):
    make_color_images(tmp_path / "d" / "train", per_class=3)
    make_color_images(tmp_path / "d" / "test", per_class=2)
    chosen = data_at(tmp_path / "d", ["blue", "green", "red"])
    assert chosen.split == "test" and len(chosen.items) == 6 and "test" in chosen.description
    rows = [
        "path,label,split",
        "d/train/red/000.png,red,train",
        "d/test/red/000.png,red,val",
        "d/test/blue/000.png,blue,val",
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    chosen = data_at(tmp_path / "labels.csv", ["blue", "green", "red"])
    assert chosen.split == "val" and chosen.targets == [2, 0]
    with pytest.raises(GraftError, match="not trained on: green, red .*it knows 2: blue, yellow"):
        data_at(tmp_path / "d", ["blue", "yellow"])


def test_gallery_shows_images_or_texts(tmp_path: Path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    assert sample_html(tmp_path / "x.png").startswith('<img src="data:image/png;base64,')
    assert (
        sample_html(TextSample("a <b>bold</b> review", 0))
        == '<blockquote class="text">a &lt;b&gt;bold&lt;/b&gt; review</blockquote>'
    )
    assert sample_markdown(TextSample("a long\nreview", 0)) == "“a long review”"
    assert (
        sample_markdown(TextSample("premise | x", 0, pair="hypothesis")) == "“premise \\| x” / “hypothesis”"
    )
    assert sample_html(TextSample("q", 0, pair="a")).count("<blockquote") == 2


def test_training_writes_a_report_of_the_bundled_model(trained_run):
    report = trained_run.path / "report"
    html = (report / "index.html").read_text()
    for key, title in SECTIONS.items():
        assert f'<section id="{key}"><h2>{title}</h2>' in html
    # self-contained: every picture inline, nothing fetched
    assert html.count('src="data:image/png;base64,') >= 3 + 9  # curves, confusion, reliability, 9 val images
    assert 'src="http' not in html and 'src="file' not in html and "<link" not in html
    markdown = (report / "report.md").read_text()
    for title in SECTIONS.values():
        assert f"## {title}" in markdown
    assert {"curves.png", "confusion.png", "reliability.png"} <= {p.name for p in report.glob("*.png")}
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("accuracy", "top_k_accuracy", "macro_f1", "weighted_f1", "ece", "per_class", "confusion_matrix",
                "most_confused", "reliability", "loss"):  # fmt: skip
        assert key in metrics
    # the bundle (best checkpoint) was evaluated: the same numbers its validation epoch measured
    bundled = json.loads((trained_run.bundle / "graft.json").read_text())["metrics"]
    assert metrics["accuracy"] == pytest.approx(bundled["val_acc"])
    assert metrics["loss"] == pytest.approx(bundled["val_loss"], abs=1e-5)
    assert (
        "optim:" in html and "<b>full</b>: all" in html and "from epoch 1: " in html
    )  # resolved config, stages
    assert "train (training run)" in html and "evaluated" in html  # data summary per split


def test_a_failing_report_warns_and_the_run_still_succeeds(tmp_path: Path, monkeypatch):
    import graft.evaluation.evaluate as evaluation

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(evaluation, "evaluate", broken)
    console = Console(record=True, width=200)
    run = graft.train(make_color_images(tmp_path / "colors", per_class=6), out=tmp_path / "run", console=console,
                      **{**TINY, "epochs": 1})  # fmt: skip
    text = console.export_text()
    assert "warning no evaluation report (RuntimeError: disk on fire); retry with: graft eval" in text
    assert (run.bundle / "model.safetensors").is_file() and not (run.path / "report").exists()
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "finished"


def test_eval_cli_on_other_data_and_its_errors(trained_run, tmp_path: Path):
    holdout = make_color_images(tmp_path / "holdout" / "test", per_class=4, seed=1).parent
    result = graft_cli("eval", trained_run.path, "--data", holdout, "--out", tmp_path / "rep")
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "macro F1" in result.stdout and "index.html" in result.stdout
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["num_samples"] == 12 and metrics["about"]["data"].startswith(str(holdout / "test"))
    again = graft_cli("eval", trained_run.path, "--data", holdout, "--out", tmp_path / "rep", "--json")
    assert (
        again.returncode == 0 and json.loads(again.stdout)["num_samples"] == 12
    )  # a report replaces a report

    make_color_images(tmp_path / "other", per_class=1)
    shutil.copytree(tmp_path / "other" / "red", tmp_path / "other" / "purple")
    assert_user_error(
        graft_cli("eval", trained_run.path, "--data", tmp_path / "other"), "not trained on: purple"
    )
    assert_user_error(graft_cli("eval", tmp_path / "nope"), "not found")
    shutil.copytree(trained_run.bundle, tmp_path / "copied")
    assert_user_error(graft_cli("eval", tmp_path / "copied"), "not inside its run folder", "--data")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert_user_error(graft_cli("eval", trained_run.path, "--out", tmp_path / "busy"), "not a graft report")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
