"""Runs that die are resumed into exactly the run that never died.

Real `graft` processes are killed with SIGKILL at exact points (GRAFT_FAULT, see graft/faults.py), then
`graft resume`d; the final weights must be bitwise equal to an uninterrupted run's (CPU, deterministic,
with a DataLoader worker process, gradual unfreezing, mid-epoch checkpoints)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_color_images

GRAFT = str(Path(sys.executable).parent / "graft")
RUN = ["--model", "test_resnet", "--no-pretrained", "--img-size", "32", "--epochs", "3", "--batch-size", "8",
       "--lr", "0.01", "--num-workers", "1", "--save-every", "2", "--strategy", "gradual", "--unfreeze-at", "1",
       "--set", "train.deterministic=true", "--set", "optim.warmup_epochs=0", "-q"]  # fmt: skip


def graft(*args, fault: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"GRAFT_FAULT": fault} if fault else {})}
    return subprocess.run([GRAFT, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    return load_file(str(run / "checkpoints" / index["last"] / "model.safetensors"))


def assert_same_run(run: Path, reference: Path) -> None:
    mine, theirs = final_weights(run), final_weights(reference)
    assert mine.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(mine[key], theirs[key]), f"{key} differs from the uninterrupted run"
    strip = lambda path: [line.split(",")[:5] for line in path.read_text().splitlines()]  # noqa: E731
    assert strip(run / "metrics.csv") == strip(reference / "metrics.csv")  # epoch,step,losses,accuracy
    for tag in ("Loss/train", "Loss/val", "LR/head"):  # curves continue where the checkpoint was: no doubling
        assert scalars(run, tag) == scalars(reference, tag), tag


def scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run / "tb")).Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_color_images(tmp_path_factory.mktemp("resume") / "colors")


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    result = graft("train", data, *RUN, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    ("fault", "how"),
    [
        ("step@7", "resume"),  # mid-epoch, after an optimizer step (last checkpoint: step 6)
        ("validation@2", "resume"),  # during the second epoch's validation
        (
            "checkpoint-write@3",
            "resume",
        ),  # halfway through writing the third checkpoint (a half-written folder)
        ("unfreeze@1", "train --resume"),  # right after gradual's first unfreeze, before its first step
    ],
)
def test_killed_anywhere_then_resumed_equals_uninterrupted(
    data: Path, reference: Path, tmp_path: Path, fault: str, how: str
):
    out = tmp_path / "run"
    killed = graft("train", data, *RUN, "--out", out, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if how == "resume":
        resumed = graft("resume", out, "-q")
    else:  # the same training command again, with --resume: continues instead of refusing the non-empty --out
        resumed = graft("train", data, *RUN, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "from step-" in resumed.stdout
    assert_same_run(out, reference)
    assert not list((out / "checkpoints").glob(".*.tmp"))  # the half-written folder was cleaned up


def test_sigterm_finishes_the_step_checkpoints_and_exits_0(data: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([GRAFT, "train", str(data), *RUN, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    for line in proc.stdout:
        if line.startswith("epoch 1/3"):
            proc.send_signal(signal.SIGTERM)
            break
    output = proc.stdout.read()
    assert proc.wait(timeout=120) == 0, output
    assert "stopped by SIGTERM at step" in output and f"Resume with: graft resume {out}" in output
    resumed = graft("resume", out, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(out, reference)
