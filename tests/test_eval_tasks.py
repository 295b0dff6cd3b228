"""`graft eval` and the report for multi-label and regression, images and texts: end to end on tiny
generated data (train, the report written after training, `graft eval RUN`, `graft eval RUN --data`),
with every headline number recomputed from predictions.csv by scikit-learn."""

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, f1_score, mean_absolute_error, r2_score

import graft
from conftest import COLORS, TINY
from graft.errors import GraftError
from graft.evaluation.data import Labels, data_at

WORDS = {"red": "crimson", "green": "leafy", "blue": "ocean"}  # a text's label is the words it contains


def graft_cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "graft", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def multi_label_images(root: Path, n: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """Images of one or two colored halves; the labels are the colors present ('red;blue')."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names, rows = sorted(COLORS), []
    for i in range(n):
        present = sorted(rng.choice(names, size=1 + i % 2, replace=False).tolist())
        halves = [present[0], present[-1]]
        pixels = np.concatenate(
            [np.clip(rng.normal(COLORS[c], 30, (24, 12, 3)), 0, 255) for c in halves], axis=1
        )
        path = root / f"{i:03d}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        rows.append((str(path), ";".join(present)))
    return rows


def regression_images(root: Path, n: int = 60, seed: int = 0) -> list[tuple[str, float]]:
    """Gray images whose brightness is the target (0-100)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        target = float(rng.uniform(0, 100))
        pixels = np.clip(rng.normal(target * 2.4 + 10, 8, (24, 24, 3)), 0, 255).astype(np.uint8)
        path = root / f"{i:03d}.png"
        Image.fromarray(pixels).save(path)
        rows.append((str(path), round(target, 2)))
    return rows


def read_predictions(report: Path) -> list[dict]:
    with (report / "predictions.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check_multi_label(report: Path, classes: list[str]) -> dict:
    """metrics.json is sane and agrees with scikit-learn on predictions.csv; the pages have the sections."""
    m = json.loads((report / "metrics.json").read_text())
    assert m["task"] == "multi-label" and m["num_classes"] == len(classes)
    rows = read_predictions(report)
    assert len(rows) == m["num_samples"] > 0
    truth = np.array([[c in r["true"].split(";") for c in classes] for r in rows], dtype=int)
    preds = np.array([[c in r["predicted"].split(";") for c in classes] for r in rows], dtype=int)
    probs = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    scored = [j for j in range(len(classes)) if truth[:, j].any()]
    assert m["map"] == pytest.approx(
        np.mean([average_precision_score(truth[:, j], probs[:, j]) for j in scored]), abs=1e-3
    )
    assert m["micro_f1"] == pytest.approx(f1_score(truth, preds, average="micro", zero_division=0), abs=1e-4)
    assert m["macro_f1"] == pytest.approx(f1_score(truth, preds, average="macro", zero_division=0), abs=1e-4)
    assert m["subset_accuracy"] == pytest.approx((truth == preds).all(1).mean(), abs=1e-4)
    thresholds = np.array(m["thresholds"])
    assert ((probs >= thresholds) == preds.astype(bool)).all(), (
        "predicted = probability at the tuned threshold"
    )
    assert [r["label"] for r in m["per_label"]] == classes
    assert [r["support"] for r in m["per_label"]] == truth.sum(0).tolist()
    assert "ece" not in m and "calibration" not in m  # calibration is single-label's
    html, md = (report / "index.html").read_text(), (report / "report.md").read_text()
    for title in ("Per label", "Precision-recall curves", "Worst samples per label", "Training curves"):
        assert title in html and f"## {title}" in md
    assert "Confusion matrix" not in html and (report / "pr_curves.png").stat().st_size > 1000
    return m


def check_regression(report: Path) -> dict:
    m = json.loads((report / "metrics.json").read_text())
    assert m["task"] == "regression"
    rows = read_predictions(report)
    true, pred = np.array([float(r["true"]) for r in rows]), np.array([float(r["predicted"]) for r in rows])
    assert len(rows) == m["num_samples"] > 0
    assert m["mae"] == pytest.approx(mean_absolute_error(true, pred), rel=1e-4, abs=1e-4)
    assert m["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred - true) ** 2))), rel=1e-4)
    assert m["r2"] == pytest.approx(r2_score(true, pred), rel=1e-3, abs=1e-4)
    assert m["residuals"]["mean"] == pytest.approx(float(np.mean(pred - true)), rel=1e-4, abs=1e-4)
    assert m["rmse"] >= m["mae"] >= 0 and m["residuals"]["abs_max"] >= m["residuals"]["abs_p90"]
    html, md = (report / "index.html").read_text(), (report / "report.md").read_text()
    for title in ("Predicted vs true", "Residuals", "Largest errors"):
        assert title in html and f"## {title}" in md
    assert "Calibration" not in html
    assert (report / "predicted_vs_true.png").is_file() and (report / "residuals.png").is_file()
    return m


def test_multi_label_images_train_eval_and_other_csv(tmp_path):
    rows = multi_label_images(tmp_path / "images")
    data = write_csv(tmp_path / "train.csv", ["path", "labels"], rows[:48])
    other = write_csv(tmp_path / "other.csv", ["path", "labels"], rows[48:])
    run = graft.train(data, out=tmp_path / "run", **{**TINY, "epochs": 2})
    classes = sorted(COLORS)
    after = check_multi_label(run.path / "report", classes)  # written at the end of training
    result = graft_cli("eval", run.path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mAP" in result.stdout and "subset accuracy" in result.stdout
    again = check_multi_label(run.path / "report", classes)
    assert again["map"] == pytest.approx(after["map"], abs=1e-4)  # the bundle recomputed = training's logits
    result = graft_cli("eval", run.path, "--data", other)
    assert result.returncode == 0, result.stderr[-3000:]
    m = check_multi_label(run.path / "report-other", classes)
    assert m["num_samples"] == 12


def test_regression_images_train_eval_and_other_csv(tmp_path):
    rows = regression_images(tmp_path / "images")
    data = write_csv(tmp_path / "train.csv", ["path", "target"], rows[:48])
    other = write_csv(tmp_path / "other.csv", ["path", "target"], rows[48:])
    run = graft.train(data, out=tmp_path / "run", **{**TINY, "epochs": 2})
    after = check_regression(run.path / "report")
    result = graft_cli("eval", run.path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MAE" in result.stdout and "R²" in result.stdout
    again = check_regression(run.path / "report")
    assert again["mae"] == pytest.approx(after["mae"], rel=1e-3)
    best = json.loads((run.path / "model" / "graft.json").read_text())["metrics"]
    assert again["mae"] == pytest.approx(float(best["val_mae"]), rel=1e-3)  # training's own number
    assert again["baseline_mae"] > 0 and 0 < again["train_mean"] < 100
    result = graft_cli("eval", run.path, "--data", other, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["num_samples"] == 12
    check_regression(run.path / "report-other")


def texts(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        present = sorted(rng.sample(sorted(WORDS), 1 + i % 2))
        filler = [rng.choice(["the", "a", "was", "and", "it"]) for _ in range(rng.randint(2, 6))]
        out.append((" ".join(filler + [WORDS[c] for c in present] + filler[:2]), present))
    return out


TEXT = {"strategy": "full", "epochs": 6, "batch_size": 8, "lr": 5e-3, "quiet": True, "optim.warmup_epochs": 0}


def test_multi_label_and_regression_texts(tmp_path, tiny_bert):
    samples = texts(60)
    multi = write_csv(tmp_path / "multi.csv", ["text", "labels"], [(t, ";".join(p)) for t, p in samples[:48]])
    other = write_csv(
        tmp_path / "multi_other.csv", ["text", "labels"], [(t, ";".join(p)) for t, p in samples[48:]]
    )
    run = graft.train(multi, out=tmp_path / "multi", model=str(tiny_bert), **TEXT)
    result = graft_cli("eval", run.path, "--data", other)
    assert result.returncode == 0, result.stderr[-3000:]
    m = check_multi_label(run.path / "report-multi_other", sorted(WORDS))
    assert m["num_samples"] == 12
    if m["subset_accuracy"] < 1:  # a mistake to show: the worst samples are texts, not thumbnails
        assert "<blockquote" in (run.path / "report-multi_other" / "index.html").read_text()
    assert read_predictions(run.path / "report-multi_other")[0]["text"] == samples[48][0]

    numbers = write_csv(tmp_path / "count.csv", ["text", "target"],
                        [(t, len(p) * 10 + (i % 3)) for i, (t, p) in enumerate(samples)])  # fmt: skip
    run = graft.train(numbers, out=tmp_path / "count", model=str(tiny_bert), **TEXT)
    check_regression(run.path / "report")
    result = graft_cli("eval", run.path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_regression(run.path / "report")


def test_eval_data_reads_labels_with_the_bundles_task(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for p in (a, b):
        Image.new("RGB", (8, 8)).save(p)
    multi = write_csv(tmp_path / "m.csv", ["path", "labels"], [(a, "red;blue"), (b, "")])
    data = data_at(multi, ["blue", "green", "red"], labels=Labels("multi-label"))
    assert data.targets == [(0, 2), ()] and data.counts(["blue", "green", "red"]) == {
        "blue": 1,
        "green": 0,
        "red": 1,
    }
    semi = write_csv(tmp_path / "s.csv", ["path", "labels"], [(a, "red|blue")])
    assert data_at(semi, ["blue", "red"], labels=Labels("multi-label", "|")).targets == [(0, 1)]
    with pytest.raises(GraftError, match="labels the model was not trained on: yellow"):
        data_at(write_csv(tmp_path / "u.csv", ["path", "labels"], [(a, "red;yellow")]), ["blue", "red"],
                labels=Labels("multi-label"))  # fmt: skip
    numbers = write_csv(tmp_path / "r.csv", ["path", "target"], [(a, "3.5"), (b, "-2")])
    assert data_at(numbers, ["target"], labels=Labels("regression")).targets == [3.5, -2.0]
    with pytest.raises(GraftError, match="needs a number"):
        data_at(
            write_csv(tmp_path / "w.csv", ["path", "target"], [(a, "old")]),
            ["target"],
            labels=Labels("regression"),
        )
    with pytest.raises(GraftError, match="pass a CSV"):
        data_at(tmp_path, ["target"], labels=Labels("regression"))


def test_eval_data_reads_a_multi_label_folder_tree(tmp_path):
    """A multi-label model evaluates on class folders where a file sits under each of its labels."""
    root = tmp_path / "scenes"
    for name in ("red", "blue"):
        (root / name).mkdir(parents=True)
    both, only = root / "red" / "both.png", root / "blue" / "only.png"
    Image.new("RGB", (8, 8), (200, 0, 0)).save(both)
    Image.new("RGB", (8, 8), (0, 0, 200)).save(only)
    (root / "blue" / "both.png").symlink_to(both)
    data = data_at(root, ["blue", "red"], labels=Labels("multi-label"))
    assert sorted(zip([p.name for p in data.items], data.targets, strict=True)) == [
        ("both.png", (0, 1)),
        ("only.png", (0,)),
    ]
