"""No silent wrong task: the labels say single-label, multi-label or regression (data/label_kind.py
`interpret`), --task overrides them, and `graft check` / `graft train` say which task and why, with each
task's own data check (data/check.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from graft.data.check import check_data
from graft.data.discover import discover
from graft.data.label_kind import interpret
from graft.data.text_tables import TextColumns
from graft.errors import GraftError
from test_cli import FAST, assert_user_error, graft

AGES = [str(age) for age in range(1, 40)]  # more whole numbers than classes usually are


@pytest.mark.parametrize(
    ("labels", "column", "task", "warned"),
    [
        (["red", "blue", "red;blue"], "label", "multi-label", False),
        (["10.5", "11.5", "12.0", "10.5"], "label", "regression", False),
        (AGES, "label", "regression", False),
        (["1", "2", "3"], "target", "regression", False),  # the column's name says it
        ([str(d) for d in range(10)], "label", "single-label", False),  # digits: classes
        (["1", "2", "3", "4", "5"], "label", "single-label", False),  # a consecutive scale: classes, no noise
        (["1", "2", "4", "7", "9", "10"], "label", "single-label", True),  # a rating with gaps
        (["a;", "b"], "label", "single-label", False),  # a ';' with nothing after it is part of the name
        (["cat", "dog"], "label", "single-label", False),
    ],
)
def test_auto_reads_the_task_from_the_labels(labels, column, task, warned):
    kind = interpret(labels, [], "auto", "data.csv", column)
    assert kind.task == task and bool(kind.reason) == (task != "single-label"), kind
    assert bool(kind.warnings) == warned, kind.warnings
    if warned:
        assert "--task regression" in kind.warnings[0]


def test_a_given_task_overrides_what_the_labels_look_like():
    assert interpret(["1", "2", "3"], ["2"], "regression", "d.csv").encode("2") == 2.0
    kind = interpret(["red;blue", "red"], ["red"], "single-label", "d.csv")  # --single-label
    assert kind.classes == ["red", "red;blue"] and kind.reason == "" and "as --task asks" in kind.warnings[0]
    assert interpret(AGES, [], "single-label", "d.csv").classes == sorted(AGES)
    multi = interpret(["red", "blue"], ["blue"], "multi-label", "d.csv")
    assert multi.classes == ["blue", "red"] and multi.encode("red") == (1,)


def test_a_word_under_regression_names_the_row_and_the_way_out():
    with pytest.raises(GraftError, match=r"regression needs a number .* got 'two'.*--task single-label"):
        interpret(["1", "two"], [], "regression", "d.csv")


def _table(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


WORDS = ["good", "bad", "fine", "awful", "great", "poor"]


def _texts(path: Path, labels: list[str], column: str = "label") -> Path:
    rows = [[f"review {i} {WORDS[i % len(WORDS)]}", labels[i % len(labels)]] for i in range(60)]
    return _table(path, ["text", column], rows)


def _images(root: Path, color_folder: Path, label_of, column: str = "label") -> Path:
    rows = [
        [str(p.relative_to(root)), label_of(i, p)] for i, p in enumerate(sorted(color_folder.rglob("*.png")))
    ]
    return _table(root / "images.csv", ["path", column], rows)


def test_label_columns_by_name_and_by_glob(tmp_path):
    rows = [[f"text {i} {WORDS[i % 6]}", i % 2, int(i % 3 == 0), 7] for i in range(40)]
    data = _table(tmp_path / "emotions.csv", ["text", "emo_joy", "emo_sad", "score"], rows)
    for picked in (("emo_joy", "emo_sad"), ("emo_*",)):
        spec = discover(data, columns=TextColumns(label_columns=picked))
        assert spec.task.name == "multi-label" and spec.classes == ["emo_joy", "emo_sad"]
        assert sum(spec.counts("train").values()) + sum(spec.counts("val").values()) == 20 + 14
    # one label on per row still is a label set: --label-columns implies multi-label
    rows = [[f"text {i}", i % 2, 1 - i % 2] for i in range(20)]
    one_hot = discover(
        _table(tmp_path / "one.csv", ["text", "a", "b"], rows), columns=TextColumns(label_columns=("a", "b"))
    )
    assert one_hot.task.name == "multi-label"
    result = graft("check", data, "--label-columns", "emo_*")
    assert result.returncode == 0 and "task multi-label" in result.stdout, result.stdout + result.stderr
    assert_user_error(graft("check", data, "--label-columns", "emo_*", "--task", "regression"),
                      "--label-columns", "multi-label")  # fmt: skip
    assert_user_error(graft("check", data, "--label-columns", "mood_*"), "no column matching 'mood_*'")


def test_a_gappy_rating_is_classes_with_a_warning(tmp_path):
    result = graft("check", _texts(tmp_path / "ratings.csv", ["1", "2", "4", "7", "9", "10"]))
    assert result.returncode == 0, result.stderr
    assert "check  task " not in result.stdout  # single-label prints as it always has
    assert "may want --task regression" in result.stdout


def test_task_flags_take_aliases_and_a_wrong_one_lists_the_choices(tmp_path):
    data = _texts(tmp_path / "reviews.csv", ["pos", "neg", "pos;neg"])
    assert "task multi-label (as given)" in graft("check", data, "--task", "multilabel").stdout
    assert "task multi-label" in graft("check", data, "--task", "multi_label_classification").stdout
    assert_user_error(graft("check", data, "--task", "multiclas"), "--task 'multiclas'",
                      "auto, single-label, multi-label, regression", "multilabel")  # fmt: skip
    assert_user_error(graft("check", data, "--task", "regression", "--single-label"), "--single-label")
    assert_user_error(graft("check", data, "--modality", "audio"), "image or text")
    old = graft("check", data, "--task", "text")  # before tasks existed --task was the modality
    assert old.returncode == 0 and "--modality text" in old.stderr and "task multi-label" in old.stdout


@pytest.mark.parametrize("modality", ["text", "image"])
def test_check_multi_label(tmp_path, color_folder, modality):
    def label_of(i, p=None):
        return ";".join(name for name, on in (("a", i % 2), ("b", i % 3 == 0), ("rare", i == 5)) if on)

    data = (_texts(tmp_path / "ml.csv", [label_of(i) for i in range(60)], "labels") if modality == "text"
            else _images(tmp_path, color_folder, label_of, "labels"))  # fmt: skip
    result = graft("check", data, "--task", "multi-label")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "task multi-label (as given)" in out and "per label (train/val): a " in out
    assert "labels per sample" in out and "samples with no label" in out
    assert "labels in fewer than 10 training samples: rare (1)" in out
    assert "no validation samples with rare: their AP" in out
    assert "tiny classes" not in out and "val accuracy" not in out and " 0/0" not in out
    report = json.loads(graft("check", data, "--task", "multi-label", "--json").stdout)
    assert report["task"] == "multi-label" and sum(report["samples"].values()) == (
        60 if modality == "text" else 48
    )
    assert report["unlabelled"]["train"] > 0 and 0 < report["cardinality"]["train"] < 2
    # auto: the ';'-joined cells say it (empty cells want --task multi-label: nothing is guessed)
    joined = _texts(tmp_path / "joined.csv", ["a", "b", "a;b"])
    result = graft("check", joined)
    assert "task multi-label (auto: 20 of 60 samples have ';'-separated labels)" in result.stdout, (
        result.stdout
    )


@pytest.mark.parametrize("modality", ["text", "image"])
def test_check_regression(tmp_path, color_folder, modality):
    def value(i, p=None):
        return str(950.5 if i == 7 else 20 + (i * 7) % 30 + 0.5 * (i % 4 != 0))

    data = (_texts(tmp_path / "reg.csv", [value(i) for i in range(60)]) if modality == "text"
            else _images(tmp_path, color_folder, value))  # fmt: skip
    result = graft("check", data)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "task regression (auto: the labels are" in out and "target 'label'" in out
    assert "target train n " in out and "median" in out and "target val n " in out
    assert "baseline val MAE" in out and "+- " in out
    assert "1 target outlier(s)" in out and "950.5" in out and "--regression-loss huber" in out
    assert "classes" not in out and "val accuracy" not in out and "imbalance" not in out
    report = json.loads(graft("check", data, "--json").stdout)
    assert report["task"] == "regression" and report["val_margin"] is None
    assert [o["target"] for o in report["outliers"]] == [950.5] and report["baseline_mae"] > 0
    assert set(report["targets"]["train"]) == {"n", "mean", "std", "min", "median", "max"}


def test_regression_refuses_a_constant_target_and_hints_at_few_whole_values(tmp_path):
    constant = _texts(tmp_path / "c.csv", ["3"])
    assert_user_error(graft("check", constant, "--task", "regression"), "is 3 in every training sample",
                      "nothing to learn")  # fmt: skip
    rating = graft("check", _texts(tmp_path / "r.csv", ["1", "2", "3", "4", "5"], "target"))
    assert "task regression (auto: the numeric column is named 'target')" in rating.stdout, rating.stdout
    assert "only 5 whole values (1, 2, 3, 4, 5)" in rating.stdout and "--task single-label" in rating.stdout


def test_report_for_single_label_is_unchanged(color_folder):
    report = check_data(discover(color_folder))
    assert report.task == "single-label" and report.lines()[0].startswith("39 train / 9 val; per class")
    assert "val accuracy known to" in report.lines()[-1]


def test_train_regression_on_numeric_labels_named_label(tmp_path, color_folder):
    ratings = {"red": "1", "green": "2", "blue": "3"}  # a consecutive scale: auto would train classes
    data = _images(tmp_path, color_folder, lambda i, p: ratings[p.parent.name])
    result = graft(
        "train", data, *FAST, "--epochs", "1", "--task", "regression", "--out", tmp_path / "run", "-q"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "task regression (as given)" in result.stdout and "baseline val MAE" in result.stdout
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "task: regression" in saved and "monitor: val_mae" in saved


def test_train_detects_multi_label_from_a_labels_column(tmp_path, color_folder):
    data = _images(tmp_path, color_folder, lambda i, p: p.parent.name + (";sq" if i % 2 else ""), "labels")
    result = graft("train", data, *FAST, "--epochs", "1", "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "task multi-label (auto: 24 of 48 samples have ';'-separated labels)" in result.stdout
    assert "per label (train/val)" in result.stdout
    assert "task: multi-label" in (tmp_path / "run" / "config.yaml").read_text()


def test_single_label_trains_the_combinations_as_classes(tmp_path, color_folder):
    data = _images(tmp_path, color_folder, lambda i, p: p.parent.name + (";sq" if i % 2 else ""))
    assert "task multi-label" in graft("check", data).stdout
    result = graft("train", data, *FAST, "--epochs", "1", "--single-label", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "red;sq" in json.loads((tmp_path / "run" / "model" / "graft.json").read_text())["classes"]


def test_a_target_column_is_read_as_regression(tmp_path):
    data = _table(tmp_path / "ratings.csv", ["text", "target"], [[f"t {i}", str(i * 1.5)] for i in range(20)])
    result = graft("check", data)
    assert result.returncode == 0 and "task regression" in result.stdout, result.stdout + result.stderr


def test_a_task_asked_for_against_what_the_labels_say_is_warned_about():
    from graft.data.label_kind import interpret

    (warning,) = interpret(["a;b", "a", "b"], [], "single-label", "x.csv").warnings
    assert "reads as multi-label; trained as single-label, as --task asks" in warning
    (warning,) = interpret(["1.5", "2.5", "3.5"], [], "single-label", "x.csv").warnings
    assert "reads as regression" in warning
    (warning,) = interpret(["a", "b"], [], "multi-label", "x.csv").warnings
    assert "no sample in x.csv has more than one label" in warning
    assert interpret(["1.5", "2.5"], [], "regression", "x.csv").warnings == []
