"""Progress for the steps that take seconds (graft/progress.py): drawn on a terminal and in a Jupyter kernel,
nothing when quiet or piped, and never on the stdout that carries a command's result."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from conftest import TINY, make_color_images
from graft import progress
from graft.progress import progress_to, status, step_bar, track, where

BAR = "━"  # what rich draws a bar with


def terminal(width: int = 160) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=width), out


def test_a_step_bar_advances_to_its_total_on_a_terminal():
    console, out = terminal()
    with step_bar("predict", total=12, unit="images", console=console) as bar:
        for _ in range(4):
            time.sleep(0.01)
            bar.advance(3)
    text = out.getvalue()
    assert where(console) == "terminal"
    assert BAR in text and "predict" in text and "images" in text
    assert "12/12" in text and "0/12" in text  # drawn at the start and, last, at the total
    assert text.rstrip().endswith("\x1b[2K")  # then erased: the log keeps its own lines only
    assert bar.done == 12


def test_track_counts_the_items_and_status_shows_its_phase():
    console, out = terminal()
    assert list(track(iter(range(5)), "check  reading images", 5, "images", console)) == [0, 1, 2, 3, 4]
    with status("log    tracing", console=console) as step:
        step.describe("log    writing")
    text = out.getvalue()
    assert "5/5" in text and "log    writing" in text


def test_nothing_is_drawn_when_quiet_piped_or_silenced():
    console, out = terminal()
    with step_bar("predict", 10, "images", console=console, quiet=True) as bar:
        bar.advance(10)
    piped = io.StringIO()
    plain = Console(file=piped, width=160)
    with step_bar("predict", 10, "images", console=plain) as bar:
        bar.advance(10)
    silenced = Console(file=io.StringIO(), force_terminal=True, quiet=True)  # the other torchrun ranks
    assert (where(console, quiet=True), where(plain), where(silenced)) == ("off", "plain", "off")
    assert out.getvalue() == "" and piped.getvalue() == ""


def test_a_long_step_leaves_one_plain_line_where_no_bar_is_drawn(monkeypatch):
    monkeypatch.setattr(progress, "LONG_STEP_S", 0.0)  # every step counts as long
    piped = io.StringIO()
    with step_bar("cache  frozen pass", 40, "images", console=Console(file=piped, width=160)) as bar:
        bar.advance(40)
    assert (
        piped.getvalue().startswith("cache  frozen pass: 40 images in ") and piped.getvalue().count("\n") == 1
    )
    quiet = io.StringIO()
    with step_bar("cache  frozen pass", 40, "images", console=Console(file=quiet), quiet=True) as bar:
        bar.advance(40)
    assert quiet.getvalue() == ""  # quiet is quieter than piped: not even that line


def test_steps_without_a_console_draw_on_the_one_the_caller_set():
    console, out = terminal()
    with progress_to(console):
        with step_bar("eval   predicting", 3, "images") as bar:
            bar.advance(3)
        with progress_to(None, quiet=True):  # an inner quiet call stays quiet, on the same console
            with step_bar("hidden", 3, "images") as bar:
                bar.advance(3)
    assert "eval   predicting" in out.getvalue() and "hidden" not in out.getvalue()


def test_graft_predict_keeps_stdout_for_the_predictions(trained_run, tmp_path, monkeypatch):
    """Many inputs: the bar goes to stderr on a terminal, stdout is exactly the JSON; piped, no bar at all."""
    import graft
    from graft.files import json_ready

    for forcing in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # this process's streams are not terminals
        monkeypatch.delenv(forcing, raising=False)
    images = make_color_images(tmp_path / "colors", per_class=8)  # 24 images, 6 batches of 4
    predicted = graft.load(trained_run.path, device="cpu").predict(images, batch_size=4)
    expected = json.loads(json.dumps(json_ready([p.to_dict() for p in predicted])))
    argv = ["predict", str(trained_run.path), str(images), "--json", "-b", "4", "--device", "cpu"]
    # A real process whose streams are pipes, told by rich's documented switch that they are terminals.
    shown = subprocess.run([str(Path(sys.executable).parent / "graft"), *argv], capture_output=True, text=True,
                           env={**os.environ, "TTY_COMPATIBLE": "1"}, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == expected
    assert BAR not in shown.stdout and "\x1b" not in shown.stdout
    assert BAR in shown.stderr and "predict" in shown.stderr and "24/24" in shown.stderr

    from test_cli import graft as graft_in_process  # stdout and stderr are StringIO: what a pipe looks like

    piped = graft_in_process(*argv)
    assert piped.returncode == 0 and json.loads(piped.stdout) == expected
    assert piped.stderr == ""


def _run_notebook(cells: list[str], cwd: Path) -> tuple[list, list[dict]]:
    """Execute `cells` in a real IPython kernel (nbclient): the last cell's outputs, every cell's outputs,
    and the contents of every display update the kernel sent (what a front end redraws in place)."""
    import nbformat
    from nbclient import NotebookClient

    updates: list[dict] = []

    class Recording(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] == "update_display_data":
                updates.append(msg["content"]["data"])
            return super().process_message(msg, cell, cell_index)

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    Recording(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return [cell.outputs for cell in notebook.cells], updates


def test_a_notebook_shows_the_bars(trained_run, tmp_path):
    """In Jupyter (no ipywidgets needed) predict's bar is drawn in the cell and stays as its record; the
    training loop's epoch bar is drawn, then cleared for the epoch's summary line."""
    images = make_color_images(tmp_path / "colors", per_class=8)
    settings = {**TINY, "epochs": 1, "quiet": False}
    outputs, updates = _run_notebook(
        [
            "import graft\n"
            f"predictions = graft.load({str(trained_run.path)!r}, device='cpu').predict({str(images)!r}, batch_size=4)\n"
            "print(len(predictions), 'predictions')",
            f"run = graft.train({str(images)!r}, out={str(tmp_path / 'run')!r}, **{settings!r})",
        ],
        tmp_path,
    )
    predict, train = outputs
    shown = [o for o in predict if o["output_type"] == "display_data"]
    assert len(shown) == 1, predict  # one display, redrawn in place
    html, text = shown[0]["data"]["text/html"], shown[0]["data"]["text/plain"]
    assert text.startswith("predict") and "24/24 images" in text and BAR in text and "<pre" in html
    assert any(o.get("text") == "24 predictions\n" for o in predict)
    streams = "".join(o.get("text", "") for cell in outputs for o in cell)
    assert 'install "ipywidgets"' not in streams  # what rich's own live display says in Jupyter
    epoch_bars = [u["text/plain"] for u in updates if u.get("text/plain", "").startswith("epoch 1/1")]
    assert epoch_bars and "samples/s" in epoch_bars[-1]
    summary = json.dumps(train)
    assert "epoch 1/1  train_loss" in summary and not any(
        o["output_type"] == "display_data" and o["data"].get("text/plain", "").startswith("epoch 1/1 ")
        and BAR in o["data"]["text/plain"] for o in train
    )  # fmt: skip


def test_the_graph_write_says_what_it_does_and_is_off_by_default(trained_run, tmp_path):
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from graft.config import resolve_config
    from graft.models.registry import create_model
    from graft.monitoring.logger import create_logger
    from graft.monitoring.monitor import Monitor

    assert resolve_config().log.graph is False
    with pytest.raises(ValueError, match="no graph"):  # a default run traced nothing
        EventAccumulator(str(trained_run.path / "tb")).Reload().Graph()

    cfg = resolve_config(overrides={"log.graph": True, "log.images": 0, "log": "tensorboard"}).log
    logger = create_logger(cfg, tmp_path)
    model = create_model("test_resnet", 3, pretrained=False, img_size=32).model
    console, out = terminal()
    with progress_to(console):
        Monitor(logger, cfg, model, [], ["a", "b", "c"]).start(
            "config", "strategy", torch.zeros(1, 3, 32, 32)
        )
    logger.close()
    assert "tracing the model graph for TensorBoard" in out.getvalue()
    assert len(EventAccumulator(str(tmp_path / "tb")).Reload().Graph().node) > 20


def test_the_data_check_of_many_texts_shows_a_spinner(tmp_path, monkeypatch):
    from graft.data import check
    from graft.data.discover import discover

    table = tmp_path / "texts.csv"
    table.write_text("text,label\n" + "".join(f"review number {i},{'ab'[i % 2]}\n" for i in range(40)))
    spec = discover(table)
    console, out = terminal()
    check.check_data(spec, console=console)
    assert out.getvalue() == ""  # 40 texts take a millisecond: no spinner
    monkeypatch.setattr(check, "SPINNER_TEXTS", 40)
    check.check_data(spec, console=console)
    assert "check  reading 40 texts" in out.getvalue()
