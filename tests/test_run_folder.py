"""The run folder's files, each written and read through its one owner: split.csv (runs/split.py);
metrics.csv, config.yaml, advice.json and stages.json (runs/records.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

import graft
from conftest import TINY, make_color_images
from graft.data.discover import discover
from graft.errors import GraftError
from graft.evaluation.context import _stages, read_run_context
from graft.runs.records import (
    RecordedStages,
    add_to_advice,
    config_text,
    read_advice,
    read_config,
    read_metrics,
    read_stages,
    write_advice,
    write_stages,
)
from graft.runs.split import ImageRow, TextRow, labels, read_split, write_rows


def test_an_image_split_is_written_read_back_and_is_a_graft_input(tmp_path: Path, monkeypatch):
    data = make_color_images(tmp_path / "colors", per_class=2)
    files = sorted(data.rglob("*.png"))
    rows = [
        ImageRow(p.relative_to(tmp_path), p.parent.name, "train" if p.stem == "000" else "val") for p in files
    ]
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(tmp_path)  # the rows' relative paths are written absolute
    write_rows(run / "split.csv", rows, text=False)
    assert (run / "split.csv").read_text().splitlines()[0] == "path,label,split"
    back = read_split(run)
    assert back == [ImageRow(p.resolve(), p.parent.name, r.split) for p, r in zip(files, rows)]
    assert [r.path.stem for r in read_split(run, "val")] == ["001"] * 3
    assert labels(back) == ["blue", "green", "red"]
    spec = discover(run / "split.csv")  # what `graft resume` relies on
    assert spec.classes == ["blue", "green", "red"] and len(spec.train) == len(spec.val) == 3


def test_a_text_split_keeps_its_pairs(tmp_path: Path):
    rows = [
        TextRow("a premise, with a comma", "yes", "train", "a hypothesis"),
        TextRow('"quoted"\nover two lines', "no", "train", "other"),
        TextRow("held out", "yes", "val", "its pair"),
    ]
    write_rows(tmp_path / "split.csv", rows, text=True)
    assert (tmp_path / "split.csv").read_text().splitlines()[0] == "text,label,split,text_pair"
    assert read_split(tmp_path) == rows
    assert read_split(tmp_path, "val") == rows[2:]
    single = [TextRow(r.text, r.label, r.split) for r in rows]
    write_rows(tmp_path / "split.csv", single, text=True)
    assert (tmp_path / "split.csv").read_text().splitlines()[0] == "text,label,split"
    assert read_split(tmp_path) == single and labels(single) == ["no", "yes"]


def test_a_missing_or_damaged_split_is_one_graft_error(tmp_path: Path):
    with pytest.raises(GraftError, match="has no split.csv"):
        read_split(tmp_path)
    (tmp_path / "split.csv").write_text("name,label\nx,y\n")
    with pytest.raises(GraftError, match="neither a path nor a text column"):
        read_split(tmp_path)
    (tmp_path / "split.csv").write_bytes(b"path,label,split\n\xff\xfe,a,val\n")
    with pytest.raises(GraftError, match="cannot read"):
        read_split(tmp_path)


def test_records_tolerate_missing_and_damaged_files(tmp_path: Path):
    assert read_metrics(tmp_path) == [] and read_config(tmp_path) == {} and config_text(tmp_path) is None
    assert read_advice(tmp_path) is None and read_stages(tmp_path) is None
    (tmp_path / "metrics.csv").write_text("epoch,val_acc,val_loss\n1,0.5,\n,,\n2,0.75,0.3,extra\n")
    assert read_metrics(tmp_path) == [
        {"epoch": "1", "val_acc": "0.5", "val_loss": ""},
        {"epoch": "2", "val_acc": "0.75", "val_loss": "0.3"},  # a row without an epoch is dropped
    ]
    (tmp_path / "metrics.csv").write_bytes(b"epoch\n\xff\n")
    assert read_metrics(tmp_path) == []
    (tmp_path / "config.yaml").write_text("strategy: [unclosed\n")
    assert read_config(tmp_path) == {} and config_text(tmp_path) == "strategy: [unclosed\n"
    (tmp_path / "config.yaml").write_text("- a list\n")
    assert read_config(tmp_path) == {}
    (tmp_path / "advice.json").write_text('{"strategy": "full"')  # torn
    assert read_advice(tmp_path) is None
    add_to_advice(tmp_path, outcome="x")  # nothing to add to: left as it was
    assert (tmp_path / "advice.json").read_text() == '{"strategy": "full"'
    write_advice(tmp_path, {"strategy": "full"})
    add_to_advice(tmp_path, bundled_epoch=2)
    assert read_advice(tmp_path) == {"strategy": "full", "bundled_epoch": 2}
    (tmp_path / "stages.json").write_text('{"strategy": "full"}')  # no summary, no lines
    assert read_stages(tmp_path) is None


def test_the_report_lists_the_recorded_stages(tmp_path: Path):
    """The stage lines come from stages.json, not from planning the config again."""
    (tmp_path / "config.yaml").write_text("strategy:\n  name: full\n")
    write_stages(tmp_path, RecordedStages("gradual", "gradual: as recorded", ["from epoch 1: head (lr x1)"]))
    context = read_run_context(tmp_path, nn.Linear(2, 2), ["a", "b"])
    assert context.stages_summary == "gradual: as recorded" and context.stages == [
        "from epoch 1: head (lr x1)"
    ]
    assert context.strategy == "full" and context.advice is None and context.split_counts == {}


def test_a_run_records_the_stages_the_report_showed_before(tmp_path: Path):
    """stages.json of a gradual run after the probe holds exactly what planning the config again gives
    (the report of runs from before stages.json), and the report shows it."""
    from safetensors.torch import save_file

    from graft.models.registry import create_model

    save_file(
        create_model("test_resnet", 3, pretrained=False).model.state_dict(), str(tmp_path / "w.safetensors")
    )
    data = make_color_images(tmp_path / "colors", per_class=6)
    settings = {**TINY, "weights": tmp_path / "w.safetensors", "strategy": "gradual", "log": "csv"}
    run = graft.train(data, out=tmp_path / "run", **settings)
    recorded = read_stages(run.path)
    assert (
        recorded is not None and recorded.strategy == "gradual" and recorded.summary.startswith("gradual: ")
    )
    model = graft.load(run.path, device="cpu").model
    solved = any(row["epoch"] == "0" for row in read_metrics(run.path))
    assert solved and (recorded.summary, recorded.lines) == _stages(read_config(run.path), model, solved)
    assert len(recorded.lines) > 1 and all(line.startswith("from epoch ") for line in recorded.lines)
    report = (run.path / "report" / "report.md").read_text()
    assert all(f"- {line}" in report for line in recorded.lines)
    (run.path / "stages.json").unlink()  # a run folder from before: planned again from config.yaml
    again = read_run_context(run.path, model, ["blue", "green", "red"])
    assert (again.stages_summary, again.stages) == (recorded.summary, recorded.lines)
    assert json.loads((run.path / "advice.json").read_text())["probe"]  # the probe ran: advice.json exists
