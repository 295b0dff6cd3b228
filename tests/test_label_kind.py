"""No silent wrong task: multi-label-looking and numeric labels are refused (or, for a few whole numbers with
gaps, warned about) before anything is written; --single-label classifies them as given."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from graft.data.label_kind import judge_labels
from graft.errors import GraftError
from test_cli import FAST, graft


@pytest.mark.parametrize(
    ("labels", "outcome"),
    [
        (["red", "blue", "red;blue"], "multi-label"),
        (["10.5", "11.5", "12.0", "10.5"], "quantity"),
        ([str(age) for age in range(1, 40)], "quantity"),  # ages: more whole numbers than classes usually are
        ([str(d) for d in range(10)], None),  # digits: classes
        (["1", "2", "3", "4", "5"], None),  # a consecutive scale: classes, no noise
        (["1", "2", "4", "7", "9", "10"], "warning"),  # a rating with gaps
        (["a;", "b"], None),  # a ';' with nothing after it is part of the name, not a list
        (["cat", "dog"], None),
    ],
)
def test_labels_are_judged(labels, outcome):
    if outcome in ("multi-label", "quantity"):
        with pytest.raises(GraftError, match=outcome):
            judge_labels(labels, "data.csv")
        return
    warnings = judge_labels(labels, "data.csv")
    assert bool(warnings) == (outcome == "warning"), warnings


def _table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _texts(tmp_path: Path, labels: list[str]) -> Path:
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [[f"review {i} {words[i % len(words)]}", labels[i % len(labels)]] for i in range(60)]
    return _table(tmp_path / "reviews.csv", ["text", "label"], rows)


def test_train_refuses_multi_label_and_numeric_labels_and_writes_nothing(tmp_path, tiny_bert):
    for labels, words in ((["pos", "neg", "pos;neg"], "look multi-label"),
                          (["10.5", "11.5", "12.5"], "look like a quantity to predict")):  # fmt: skip
        data = _texts(tmp_path, labels)
        for command in (["check", data], ["train", data, "--model", tiny_bert, "--out", tmp_path / "run"]):
            result = graft(*command)
            assert result.returncode == 2 and words in result.stderr, result.stdout + result.stderr
            assert "--single-label" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "run").exists()


def test_single_label_trains_the_combinations_as_classes(tmp_path, color_folder):
    rows = [[str(p.relative_to(tmp_path)), p.parent.name + (";sq" if i % 2 else "")]
            for i, p in enumerate(sorted(color_folder.rglob("*.png")))]  # fmt: skip
    data = _table(tmp_path / "images.csv", ["path", "label"], rows)
    assert graft("check", data).returncode == 2
    result = graft("train", data, *FAST, "--epochs", "1", "--single-label", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    import json

    assert "red;sq" in json.loads((tmp_path / "run" / "model" / "graft.json").read_text())["classes"]


def test_a_missing_label_column_names_what_the_columns_look_like(tmp_path):
    data = _table(tmp_path / "ratings.csv", ["text", "target"], [["a", "1"], ["b", "2"]])
    result = graft("check", data)
    assert result.returncode == 2 and "'target' looks like a regression target" in result.stderr
