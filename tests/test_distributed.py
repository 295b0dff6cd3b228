"""Data-parallel training under real torchrun: 2 processes, gloo, CPU.

A run is killed mid-epoch (SIGKILL in both ranks, GRAFT_FAULT), then resumed with 2 processes and with 1.
The run uses gradual unfreezing (a head-only epoch on the feature cache, then an unfreeze: the DDP wrapper
is rebuilt) and mid-epoch checkpoints.

Tolerance against a single-process run: 2 processes with batch 4 each train on exactly the batches of one
process with batch 8 (the sampler deals sample i of the same order to rank i % 2, DDP averages the
gradients, and the per-sample augmentation is seeded by the sample), so the two differ only by
floating-point summation order. test_vit has no BatchNorm (per-rank batch statistics would be a real
difference). Measured: weights within 7e-5 after 6 AdamW steps at lr 1e-2, logged losses equal to 6
digits. Allowed: weights within 1e-3, losses within 1e-4.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import checkpoint, make_color_images
from graft.data.sampler import ResumableSampler
from graft.training.launch import without_devices

GRAFT = str(Path(sys.executable).parent / "graft")
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc-per-node=2",
    "-m",
    "graft",
    "--",
]
RUN = ["--model", "test_vit", "--no-pretrained", "--img-size", "32", "--epochs", "2", "--lr", "0.01",
       "--num-workers", "0", "--device", "cpu", "--strategy", "gradual", "--unfreeze-at", "1", "--save-every", "2",
       "--set", "optim.warmup_epochs=0", "--set", "log.sinks=csv", "--set", "train.deterministic=true", "-q"]  # fmt: skip
# The same settings for the in-process runs (graft.train: no process start-up to pay for).
SETTINGS = {"model": "test_vit", "pretrained": False, "img_size": 32, "epochs": 2, "lr": 0.01, "num_workers": 0,
            "device": "cpu", "strategy": "gradual", "unfreeze_at": "1", "save_every": 2, "optim.warmup_epochs": 0,
            "log": "csv", "train.deterministic": True, "quiet": True}  # fmt: skip
WEIGHT_TOL, LOSS_TOL = 1e-3, 1e-4


def run(command: list, cache: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRAFT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    env.pop("GRAFT_FAULT", None)
    if fault:
        env["GRAFT_FAULT"] = fault
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, timeout=300)


def history(run_dir: Path) -> list[dict]:
    return checkpoint(run_dir).state["progress"]["history"]


def assert_close_runs(mine: Path, reference: Path) -> None:
    a, b = checkpoint(mine).model, checkpoint(reference).model
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < WEIGHT_TOL, f"weights differ by {worst:.2g} from the single-process run"
    for ours, theirs in zip(history(mine), history(reference), strict=True):
        assert ours["step"] == theirs["step"]
        for key in ("train_loss", "val_loss", "val_acc"):
            assert abs(ours[key] - theirs[key]) < LOSS_TOL, (key, ours, theirs)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    make_color_images(root / "colors" / "train", per_class=8)  # 24 images: 3 steps of 2 x 4 per epoch
    make_color_images(root / "colors" / "val", per_class=4, seed=1)
    return root


@pytest.fixture(scope="module")
def single(data: Path) -> Path:
    """The reference: one process, batch 8 (= 2 processes x 4), in this process."""
    import graft

    out = data / "single"
    try:
        graft.train(data / "colors", out=out, batch_size=8, **{**SETTINGS, "data.cache_dir": data / "cache"})
    finally:
        torch.use_deterministic_algorithms(False)  # train.deterministic set it for this whole process
    return out


@pytest.fixture(scope="module")
def killed(data: Path) -> Path:
    """2 processes via the `--devices` shortcut; rank 0 is killed right after its third checkpoint (step 4:
    epoch 2, after the unfreeze, mid-epoch) is committed, and torchrun stops rank 1."""
    out = data / "killed"
    command = [GRAFT, "train", data / "colors", *RUN, "--batch-size", "4", "--out", out, "--devices", "2"]
    result = run(command, data / "cache", fault="checkpoint-committed@3")
    assert result.returncode != 0, "the fault should have killed the workers"
    saved = checkpoint(out)
    assert saved.name == "step-000004", saved.name
    assert saved.state["world_size"] == 2 and len(saved.train_state["rng_ranks"]) == 2
    assert saved.state["progress"]["batch_in_epoch"] == 1  # per rank: 8 of epoch 2's 24 samples
    return out


def test_killed_ddp_run_resumed_on_two_processes_matches_single_process(
    data: Path, single: Path, killed: Path, tmp_path: Path
):
    resumed = tmp_path / "run"
    shutil.copytree(killed, resumed)
    result = run([*TORCHRUN, "resume", resumed], data / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "from step-000004 (step 4): continuing at epoch 2, batch 1" in result.stdout
    assert result.stdout.count("next: graft predict") == 1  # rank 0 alone prints
    assert (resumed / "model" / "graft.json").is_file()
    assert_close_runs(resumed, single)
    rows = (resumed / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["1", "3"], ["2", "6"]]  # no row twice, none missing


def test_killed_ddp_run_resumed_on_one_process(data: Path, killed: Path, tmp_path: Path):
    """Another world size: valid, not bitwise. The global batch halves (4 per process), so epoch 2 has
    6 steps; the resumed process starts after the 8 samples both ranks had trained (2 batches of 4)."""
    from rich.console import Console

    from graft.workflow.resume import resume_run

    resumed = tmp_path / "run"
    shutil.copytree(killed, resumed)
    console = Console(record=True, width=200)
    try:
        resume_run(resumed, {"data.cache_dir": str(data / "cache")}, console)
    finally:
        torch.use_deterministic_algorithms(False)
    assert "continuing at epoch 2, batch 2" in console.export_text()
    last = history(resumed)[-1]
    assert last["epoch"] == 2 and last["step"] == 4 + 4  # the 4 remaining batches of 4
    assert np.isfinite(last["train_loss"]) and last["val_acc"] > 0.5
    assert "rng_ranks" not in checkpoint(resumed).train_state


@pytest.mark.slow
def test_resumed_ddp_run_equals_uninterrupted_ddp_run(data: Path, killed: Path, tmp_path: Path):
    """Same world size: exact (bitwise on CPU), like single-process resume."""
    reference = tmp_path / "reference"
    result = run(
        [*TORCHRUN, "train", data / "colors", *RUN, "--batch-size", "4", "--out", reference], data / "cache"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = tmp_path / "resumed"
    shutil.copytree(killed, resumed)
    assert run([*TORCHRUN, "resume", resumed], data / "cache").returncode == 0
    a, b = checkpoint(resumed).model, checkpoint(reference).model
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert history(resumed) == [
        {**row, **{k: history(resumed)[i][k] for k in ("epoch_time", "samples_per_s", "wall_time")}}
        for i, row in enumerate(history(reference))
    ]


@pytest.mark.parametrize("size", [24, 25, 7])
@pytest.mark.parametrize("world", [2, 3])
def test_sharded_order_is_the_single_order_dealt_to_ranks(size: int, world: int):
    single = ResumableSampler(size, shuffle=True, seed=3)
    single.set_epoch(2)
    order = [i for _, i in single]
    shares = []
    for rank in range(world):
        sampler = ResumableSampler(size, shuffle=True, seed=3)
        sampler.shard(rank, world, pad=True)
        sampler.set_epoch(2)
        shares.append([i for _, i in sampler])
        assert len(shares[-1]) == len(sampler) == -(-size // world)  # equal shares: equal step counts
    padded = order + order[: (-size) % world]
    assert [shares[i % world][i // world] for i in range(len(padded))] == padded


def test_sharded_position_resumes_exactly_or_covers_the_rest():
    size, batch = 30, 2
    order = list(ResumableSampler(size, shuffle=True, seed=0))

    def share(rank: int, world: int, start: int, pad: bool = True) -> list[int]:
        sampler = ResumableSampler(size, shuffle=True, seed=0)
        sampler.shard(rank, world, pad)
        sampler.set_epoch(0, start)
        return [i for _, i in sampler]

    for rank in range(2):  # same world: the rest of the rank's own share
        assert share(rank, 2, 3 * batch) == share(rank, 2, 0)[3 * batch :]
    # 2 ranks trained 3 batches each (12 samples); 3 ranks take the other 18, each once
    rest = sorted(i for r in range(3) for i in share(r, 3, 3 * batch * 2 // 3))
    assert rest == sorted(i for _, i in order[12:])
    # evaluation shares (no padding) cover the set exactly once
    assert sorted(i for r in range(4) for i in share(r, 4, 0, pad=False)) == list(range(size))


def test_devices_flag_is_removed_before_torchrun():
    assert without_devices(["train", "d", "--devices", "2", "-q", "--devices=4"]) == ["train", "d", "-q"]
