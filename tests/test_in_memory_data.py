"""graft.train / graft.check on in-memory data: a pandas DataFrame or (path or text, label) pairs go through
the same discovery, checks, split.csv and resume as a CSV; other objects get one line naming what is
accepted (not a dump of the object)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import graft
from conftest import TINY
from graft.errors import GraftError


def _pairs(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), p.parent.name) for p in sorted(folder.rglob("*.png"))]


def test_a_dataframe_of_relative_paths_trains_and_resumes(tmp_path, color_folder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame([(os.path.relpath(p, tmp_path), label) for p, label in _pairs(color_folder)],
                         columns=["path", "label"])  # fmt: skip
    run = graft.train(frame, out=tmp_path / "run", **{**TINY, "epochs": 1})
    assert sorted(run.classes) == ["blue", "green", "red"]
    split = (run.path / "split.csv").read_text().splitlines()
    assert all(
        Path(line.split(",")[0]).is_absolute() for line in split[1:]
    )  # the run no longer needs the table
    assert graft.resume(run.path, epochs=2).history[-1]["epoch"] == 2


def test_pairs_of_paths_and_of_texts(tmp_path, color_folder):
    run = graft.train(_pairs(color_folder), out=tmp_path / "run", **{**TINY, "epochs": 1})
    assert run.modality == "image" and len(run.classes) == 3
    texts = [
        (f"a {'fine' if i % 2 else 'poor'} film number {i}", "pos" if i % 2 else "neg") for i in range(40)
    ]
    report = graft.check(texts)
    assert report.modality == "text" and report.classes == ["neg", "pos"]
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) == 40


@pytest.mark.parametrize(
    "data", [{"path": "x"}, object(), [("a", "b", "c")], []], ids=["dict", "object", "triples", "empty"]
)
def test_other_data_is_one_line_naming_what_is_accepted(data):
    with pytest.raises(GraftError, match="graft.train takes a folder or CSV path, a pandas DataFrame") as err:
        graft.train(data, model="test_resnet")
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_a_model_that_is_no_module_is_one_line(color_folder):
    # nn.Module objects are taken (tests/test_module_input.py); anything else is named with what is.
    with pytest.raises(
        GraftError, match=r"model: got a builtins\.object; graft.train takes a model name .* or an nn.Module"
    ):
        graft.train(color_folder, model=object())
