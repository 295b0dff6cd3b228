"""A full disk, a file size limit or a read-only run folder mid-run: one line naming the file, the run
stopped and resumable, no temporary left. Real processes; the tmpfs cases need root (skipped otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli import graft

FAST_TRAIN = ["--model", "test_resnet", "--img-size", "32", "--batch-size", "8", "--set", "model.pretrained=false",
              "--set", "data.num_workers=0", "--set", "checkpoint.save_every_steps=5", "-q"]  # fmt: skip


def _graft_process(*args, **popen):
    import subprocess
    import sys

    return subprocess.Popen([str(Path(sys.executable).parent / "graft"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)  # fmt: skip


def _assert_stopped_in_one_line(run: Path, stderr: str, message: str) -> None:
    from graft.runs.status import read_status

    assert message in stderr, stderr
    assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert read_status(run)["state"] == "stopped"
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no .step-*.tmp


def test_a_file_size_limit_stops_the_run_in_one_line_and_it_resumes(tmp_path, color_folder):
    """RLIMIT_FSIZE makes the first checkpoint's optimizer state unwritable (EFBIG), in a real process."""
    import resource

    run = tmp_path / "run"
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2_500_000, 2_500_000))  # noqa: E731
    process = _graft_process(
        "train", color_folder, *FAST_TRAIN, "--epochs", "2", "--out", run, preexec_fn=limit
    )
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2
    _assert_stopped_in_one_line(
        run, stderr, "a file size limit was reached (ulimit -f); no checkpoint was written yet"
    )
    resumed = graft("resume", run)
    assert resumed.returncode == 2 and "start it over" in resumed.stderr  # nothing was checkpointed
    again = _graft_process("train", color_folder, *FAST_TRAIN, "--epochs", "2", "--out", run)
    assert again.wait(timeout=300) == 0, again.communicate()  # started over, as it said


@pytest.fixture
def small_disk(tmp_path):
    """A 120 MB tmpfs (needs root, as in CI's container; skipped elsewhere)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=120m", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_full_disk_mid_run_stops_it_in_one_line_and_it_resumes(small_disk, color_folder):
    import time

    run = small_disk / "run"
    process = _graft_process("train", color_folder, *FAST_TRAIN, "--epochs", "12", "--out", run)
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    _assert_stopped_in_one_line(run, stderr, "the disk is full")
    filler.unlink()
    resumed = graft("resume", run, "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (run / "model" / "graft.json").is_file()


def test_a_read_only_run_folder_gets_one_line_from_every_command(small_disk, color_folder, tmp_path):
    import subprocess

    import graft as graft_api
    from conftest import TINY

    run = graft_api.train(color_folder, out=small_disk / "run", **TINY).path
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        for args in (
            ["resume", run, "--epochs", "4"],
            ["eval", run],
            ["export", run, "--format", "torchscript"],
        ):
            result = graft(*args)
            assert result.returncode == 2, (args, result.stdout + result.stderr)
            assert (
                "Read-only file system" in result.stderr or "is the run folder writable" in result.stderr
            ), result.stderr
            assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
                result.stderr
            )
        assert graft("predict", run, next(color_folder.rglob("*.png"))).returncode == 0  # reading still works
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], capture_output=True)
