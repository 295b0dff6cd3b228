"""One writer per run folder (runs/lock.py), a run killed before its first checkpoint started over, and a
damaged best checkpoint named at the end of a run. Real processes hold the lock and are SIGKILLed."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import graft
from test_untrusted_files import _flip_byte

LOCK_HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {src!r})
from graft.runs.lock import RunLock
from graft.runs.status import mark_running
lock = RunLock(Path({run!r})).acquire()
mark_running(Path({run!r}), 3)
print("held", flush=True)
time.sleep(120)
"""


def _hold_lock(run: Path):
    """A real second process holding the run's lock, as a live `graft train` does."""
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    process = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER.format(src=src, run=str(run))],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def test_resume_is_refused_while_another_process_writes_the_run_and_works_after_it_is_killed(
    tmp_path, color_folder
):
    import signal

    import graft
    from conftest import TINY

    run = graft.train(color_folder, out=tmp_path / "run", **{**TINY, "epochs": 2}).path
    holder = _hold_lock(run)
    try:
        result = graft_cli("resume", run, "--epochs", "3")
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"is in use by another graft process (pid {holder.pid} on" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # SIGKILL leaves the lock file behind, but not the lock: the OS released it with the process.
    assert (run / ".lock").exists()
    result = graft_cli("resume", run, "--epochs", "3", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_new_run_into_a_folder_being_written_is_refused(tmp_path, color_folder):
    import signal

    run = tmp_path / "run"  # as a run looks in its first seconds: created, locked, no checkpoint yet
    (run / "checkpoints").mkdir(parents=True)
    (run / "split.csv").write_text("path,label,split\n")
    holder = _hold_lock(run)
    try:
        result = graft_cli("train", color_folder, "--model", "test_resnet", "--img-size", "32", "--out", run)
        assert result.returncode == 2 and "is in use by another graft process" in result.stderr, result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert sorted(p.name for p in run.iterdir()) == [
        ".lock",
        "checkpoints",
        "split.csv",
        "status.json",
    ]  # the holder's


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path, color_folder):
    from graft.workflow.run_dir import restartable

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)  # what a run killed while planning leaves: no step-* folder
    (run / "split.csv").write_text("path,label,split\n")
    (run / "status.json").write_text('{"state": "running", "pid": 999999}')
    resumed = graft_cli("resume", run)
    assert resumed.returncode == 2, resumed.stderr
    assert "is not a graft run" in resumed.stderr  # killed before config.yaml: nothing to resume from
    (run / "config.yaml").write_text("strategy: {name: auto}\n")  # killed after it, before a checkpoint
    resumed = graft_cli("resume", run)
    assert resumed.returncode == 2 and f"start it over: graft train DATA --out {run}" in resumed.stderr
    result = graft_cli("train", color_folder, "--model", "test_resnet", "--img-size", "32", "--epochs", "1",
                       "--set", "model.pretrained=false", "--set", "data.num_workers=0", "--out", run)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "its run stopped before its first checkpoint" in result.stdout and "starting it over" in result.stdout
    )
    assert (run / "model" / "graft.json").is_file() and not restartable(run)


def test_a_folder_with_files_graft_did_not_write_is_never_cleared(tmp_path, color_folder):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "split.csv").write_text("path,label,split\n")
    (run / "notes.txt").write_text("mine")
    result = graft_cli("train", color_folder, "--model", "test_resnet", "--img-size", "32", "--out", run)
    assert result.returncode == 2 and "already holds" in result.stderr
    assert (run / "notes.txt").read_text() == "mine"


def graft_cli(*args):
    return graft(*args)


def test_two_trainings_started_together_into_one_folder_one_wins(tmp_path, color_folder):
    """Real processes, started at once: exactly one run owns the folder; the other is refused in one line
    and writes nothing into it (before the lock, both passed the "new folder" check 3 times in 5)."""
    import subprocess
    import sys

    run = tmp_path / "run"
    command = [str(Path(sys.executable).parent / "graft"), "train", str(color_folder), "--model", "test_resnet",
               "--img-size", "32", "--epochs", "1", "--set", "model.pretrained=false", "--set",
               "data.num_workers=0", "--out", str(run), "-q"]  # fmt: skip
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "is in use by another graft process" in loser or "already holds a run" in loser, loser
    assert "Traceback" not in loser
    config = (run / "config.yaml").read_text()
    assert config.count("seed:") == 1 and len((run / "metrics.csv").read_text().splitlines()) == 2


def test_a_damaged_best_checkpoint_is_said_and_what_was_bundled_is_named(tmp_path, color_folder, monkeypatch):
    """The best checkpoint is damaged (a real byte flipped on disk) just before the end-of-run bundle."""
    import io

    from rich.console import Console

    import graft
    import graft.workflow.train as train_module
    from conftest import TINY
    from graft.runs.store import MODEL, CheckpointStore

    real_load_best = train_module.load_best
    damaged: list[str] = []

    def damage_then_load(run_dir, p, console):
        store = CheckpointStore(run_dir / "checkpoints")
        best, last = store.read_index().best, store.read_index().last
        victim = best if best != last else None
        if victim is not None:
            _flip_byte(run_dir / "checkpoints" / victim / MODEL)
            damaged.append(victim)
        return real_load_best(run_dir, p, console)

    monkeypatch.setattr(train_module, "load_best", damage_then_load)
    out = io.StringIO()
    settings = {**TINY, "epochs": 4, "monitor": "val_loss", "mode": "max", "keep_top_k": 2, "quiet": False}
    run = graft.train(color_folder, out=tmp_path / "run", console=Console(file=out, width=250), **settings)
    text = out.getvalue()
    assert damaged, "the best epoch was the last one: nothing to damage (the run's ranking changed?)"
    bundled = json.loads((run.bundle / "graft.json").read_text())["checkpoint"]
    assert bundled != damaged[0]
    assert f"the best checkpoint {damaged[0]} is damaged" in text and f"the bundle holds {bundled}" in text
    last_line = [line for line in text.splitlines() if f"from {bundled}" in line][-1]
    assert not last_line.startswith("best ")
