"""In-memory data after discovery: an error that names the CSV graft wrote for an object says which object
it holds, and graft.evaluate scores a data object as graft.train would read it (all of it)."""

from __future__ import annotations

import pytest

import graft
from graft.errors import GraftError


def test_an_error_naming_the_csv_written_for_an_object_says_which_object_it_holds():
    train = [(f"good text {i}", "pos") for i in range(10)] + [(f"bad text {i}", "neg") for i in range(10)]
    val = [("a fine one", "pos"), ("meh", "other")]
    with pytest.raises(GraftError, match="never occur in the training data") as err:
        graft.check(train, val=val, quiet=True)
    assert "is the CSV graft wrote for the list given as data" in str(err.value) and "\n" not in str(
        err.value
    )


def test_evaluate_takes_a_data_object_as_train_does(trained_run, tmp_path, color_folder):
    pairs = [(str(p), p.parent.name) for p in sorted(color_folder.rglob("*.png"))]
    metrics = graft.evaluate(trained_run, data=pairs, out=tmp_path / "report", quiet=True)
    assert metrics["num_samples"] == len(pairs) == 48 and 0 <= metrics["accuracy"] <= 1
    assert (tmp_path / "report" / "index.html").is_file()
    on_folder = graft.evaluate(trained_run, data=color_folder, out=tmp_path / "folder", quiet=True)
    assert metrics["accuracy"] == on_folder["accuracy"]  # the same images, by path or as pairs
