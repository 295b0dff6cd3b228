"""`graft runs` (status, resumability, best of every run) and `graft board` (TensorBoard over runs/)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

import graft
from conftest import TINY, make_color_images
from graft.cli.app import app
from graft.runs.status import read_runs

GRAFT = str(Path(sys.executable).parent / "graft")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped: what a SIGKILLed trainer leaves behind."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def set_status(run_dir: Path, **fields) -> None:
    path = run_dir / "status.json"
    status = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**status, **fields}))


def age(run_dir: Path, seconds_ago: float) -> None:
    """Make every file `graft runs` dates a run by look `seconds_ago` old."""
    stamp = time.time() - seconds_ago
    for name in ("status.json", "metrics.csv", "checkpoints/index.json", "config.yaml"):
        if (run_dir / name).exists():
            os.utime(run_dir / name, (stamp, stamp))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    """runs/ with one real finished run, and copies of it made to look crashed, stopped, running and
    older than status.json, plus a run that died before its first checkpoint."""
    root = tmp_path_factory.mktemp("runs")
    data = make_color_images(root / "colors")
    runs = root / "runs"
    run = graft.train(data, out=runs / "finished", **TINY)
    for name in ("crashed", "stopped", "running", "legacy"):
        shutil.copytree(runs / "finished", runs / name)
    set_status(runs / "crashed", state="running", pid=dead_pid())  # SIGKILL: no end recorded
    set_status(runs / "stopped", state="stopped", detail="SIGTERM")
    set_status(runs / "running", state="running", pid=os.getpid())
    (runs / "legacy" / "status.json").unlink()
    (runs / "early").mkdir()  # killed while building the model: a config, nothing else
    shutil.copy(runs / "finished" / "config.yaml", runs / "early")
    set_status(runs / "early", state="running", pid=dead_pid(), host=socket.gethostname(), epochs=3)
    for seconds_ago, name in enumerate(["running", "stopped", "crashed", "early", "legacy", "finished"]):
        age(runs / name, 60 * seconds_ago)
    return runs, run


def test_training_records_its_status(runs):
    runs, run = runs
    status = json.loads((runs / "finished" / "status.json").read_text())
    assert status["state"] == "finished" and status["detail"] is None and status["epochs"] == 3
    assert (status["host"], status["pid"]) == (socket.gethostname(), os.getpid())  # trained in this process
    assert status["started"] <= status["ended"] == status["updated"]
    # The run folder itself is a runs folder of one.
    (info,) = read_runs(runs / "finished")
    assert (info.name, info.status, info.best, info.best_epoch) == (
        "finished",
        "finished",
        run.best_metric,
        run.best_epoch,
    )


def test_runs_json_says_what_each_run_is_and_whether_it_resumes(runs):
    runs, run = runs
    result = CliRunner().invoke(app, ["runs", str(runs), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [r["name"] for r in listed] == ["running", "stopped", "crashed", "early", "legacy", "finished"]
    by_name = {r["name"]: r for r in listed}
    expected = {  # status, resumable
        "running": ("running", False),
        "stopped": ("stopped", True),
        "crashed": ("crashed", True),  # pid gone, but its checkpoints are intact
        "early": ("crashed", False),  # nothing to resume from
        "legacy": ("finished", False),  # no status.json: all epochs in metrics.csv and a bundle
        "finished": ("finished", False),
    }
    assert {name: (r["status"], r["resumable"]) for name, r in by_name.items()} == expected
    finished = by_name["finished"]
    assert (finished["epochs_done"], finished["epochs_total"], finished["monitor"]) == (3, 3, "val_acc")
    assert (finished["best"], finished["best_epoch"]) == (run.best_metric, run.best_epoch)
    assert by_name["stopped"]["note"] == "SIGTERM"
    assert (by_name["early"]["epochs_done"], by_name["early"]["best"]) == (0, None)
    assert finished["path"] == str(runs / "finished") and finished["updated"]


def test_runs_table_marks_resumable_runs_and_says_how(runs):
    runs, run = runs
    result = CliRunner().invoke(app, ["runs", str(runs)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert set(rows) == {"running", "stopped", "crashed", "early", "legacy", "finished"}
    assert "stopped (resumable)" in rows["stopped"] and "crashed (resumable)" in rows["crashed"]
    assert "crashed" in rows["early"] and "resumable" not in rows["early"] + rows["running"]
    assert (
        f"val_acc {run.best_metric:.2%} @ {run.best_epoch}" in rows["finished"] and "3/3" in rows["finished"]
    )
    assert f"resume with: graft resume {runs / 'stopped'}" in result.output  # the newest resumable run


def test_a_failed_run_lists_as_crashed_with_its_error(tmp_path, monkeypatch):
    import graft.workflow.train as run_module

    def broken_fit(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(run_module, "fit", broken_fit)
    data = make_color_images(tmp_path / "colors", per_class=4)
    with pytest.raises(RuntimeError):
        graft.train(data, out=tmp_path / "runs" / "r", **TINY)
    (info,) = read_runs(tmp_path / "runs")
    assert (info.status, info.resumable) == ("crashed", False)
    assert info.note == "RuntimeError: CUDA error: an illegal memory access was encountered"


def test_runs_does_not_import_torch(runs):
    runs, _ = runs
    code = (
        "import sys; from typer.testing import CliRunner; from graft.cli.app import app; "
        f"result = CliRunner().invoke(app, ['runs', {str(runs)!r}]); "
        "assert result.exit_code == 0, result.output; print(sorted(m for m in ('torch', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["runs", "board"])
def test_a_missing_runs_folder_is_a_one_line_error(tmp_path, command):
    result = subprocess.run(
        [GRAFT, command, str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: runs folder {tmp_path / 'nope'} not found; pass the folder `graft train` wrote runs into"
    ]


def test_board_serves_every_run_until_ctrl_c(runs):
    runs, _ = runs
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    board = subprocess.Popen(
        [GRAFT, "board", str(runs), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = board.stdout.readline()
        url = f"http://localhost:{port}/"
        assert line.startswith(f"TensorBoard on {url} ") and "Ctrl-C" in line, line + board.stderr.read()
        expected = {f"{name}/tb" for name in ("running", "stopped", "crashed", "legacy", "finished")}
        deadline, listed = time.monotonic() + 20, set()
        while (
            time.monotonic() < deadline and listed != expected
        ):  # TensorBoard scans the folder in the background
            listed = set(json.loads(urllib.request.urlopen(url + "data/runs", timeout=5).read()))
            time.sleep(0.5)
        assert listed == expected

        # The port is taken now: a second board says so in one line.
        taken = subprocess.run(
            [GRAFT, "board", str(runs), "--port", str(port)], capture_output=True, text=True, timeout=60
        )
        assert taken.returncode == 2 and len(taken.stderr.strip().splitlines()) == 1, taken.stderr
        assert f"port {port}" in taken.stderr and "--port" in taken.stderr

        board.send_signal(signal.SIGINT)
        out, _ = board.communicate(timeout=20)
        assert board.returncode == 0 and "TensorBoard stopped" in out
    finally:
        if board.poll() is None:
            board.kill()
            board.wait()


def test_a_run_without_metrics_csv_lists_from_its_checkpoint(runs, tmp_path):
    runs, _ = runs
    shutil.copytree(runs / "finished", tmp_path / "nocsv")
    (tmp_path / "nocsv" / "metrics.csv").unlink()  # as with --log none
    (info,) = read_runs(tmp_path)
    (reference,) = [r for r in read_runs(runs) if r.name == "finished"]
    assert (info.epochs_done, info.best, info.best_epoch) == (
        reference.epochs_done,
        reference.best,
        reference.best_epoch,
    )
    assert info.epochs_done == TINY["epochs"]
