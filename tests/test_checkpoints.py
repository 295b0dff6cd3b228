"""Checkpoint storage: damage is detected and survived, pickled code is refused, disk full loses nothing,
best and top-k survive restarts, early stopping resumes, and resuming with another model is refused."""

import errno
import json
import pickle
from pathlib import Path

import pytest
import torch

import graft
from conftest import TINY
from graft.errors import GraftError
from graft.runs.manifest import digest as _digest
from graft.runs.store import MANIFEST, MODEL, STATE, TRAIN_STATE, CheckpointStore
from graft.workflow.resume import resume_run

RESUMABLE = {**TINY, "save_every": 2, "keep_top_k": 2, "monitor": "val_loss", "epochs": 3, "num_workers": 0}


def _store(run) -> CheckpointStore:
    return CheckpointStore(run.path / "checkpoints" if hasattr(run, "path") else run / "checkpoints")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    store = CheckpointStore(run_dir / "checkpoints")
    return store.load(store.read_index().last).model


def test_store_round_trip_and_damage_detection(tmp_path: Path):
    store = CheckpointStore(tmp_path)
    model = {"w": torch.arange(6.0).reshape(2, 3)}
    name = store.save(7, model, {"optimizer": {"state": {}}, "rng": torch.ones(3)}, {"progress": {"step": 7}})
    assert name == "step-000007" and store.verify(name) is None
    loaded = store.load(name)
    assert torch.equal(loaded.model["w"], model["w"]) and loaded.state["progress"]["step"] == 7
    folder = tmp_path / name

    data = (folder / MODEL).read_bytes()
    (folder / MODEL).write_bytes(data[:-10])  # truncated
    assert "truncated" in store.verify(name)
    flipped = bytearray(data)
    flipped[-5] ^= 0x01  # one bit
    (folder / MODEL).write_bytes(bytes(flipped))
    assert "checksum" in store.verify(name)
    (folder / MODEL).write_bytes(data)
    (folder / MANIFEST).unlink()  # half-written: the manifest comes last
    assert "did not finish" in store.verify(name)
    with pytest.raises(GraftError, match="is damaged"):
        store.load(name)


class _Exploit:
    """Unpickling this would run `touch <path>`."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_pickled_code_is_refused_never_executed(tmp_path: Path):
    store = CheckpointStore(tmp_path / "checkpoints")
    name = store.save(1, {"w": torch.zeros(2)}, {"optimizer": {}}, {"progress": {}})
    folder = tmp_path / "checkpoints" / name
    marker = tmp_path / "pwned"
    with open(folder / TRAIN_STATE, "wb") as f:
        pickle.dump({"optimizer": _Exploit(marker)}, f, protocol=2)
    # The attacker also rewrites the manifest, so the checksums pass: weights_only must still refuse.
    manifest = {f: _digest(folder / f) for f in (MODEL, TRAIN_STATE, STATE)}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(GraftError, match="refused to load .*train_state.pt.*not executed"):
        store.load(name)
    assert not marker.exists()


def test_disk_full_keeps_the_previous_checkpoint(color_folder, tmp_path, monkeypatch):
    import graft.runs.store as store_module

    real_save = store_module.save_file
    calls = {"n": 0}

    def failing_save(tensors, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path)

    monkeypatch.setattr(store_module, "save_file", failing_save)
    with pytest.raises(GraftError, match=r"the disk is full; the previous checkpoint step-000002 is intact"):
        graft.train(color_folder, out=tmp_path / "r", **RESUMABLE)
    store = CheckpointStore(tmp_path / "r" / "checkpoints")
    assert store.names() == ["step-000002"] and store.verify("step-000002") is None
    assert not list((tmp_path / "r" / "checkpoints").glob(".*"))  # no partial folder left behind
    monkeypatch.setattr(store_module, "save_file", real_save)
    assert resume_run(tmp_path / "r").history[-1]["epoch"] == 3  # and the run can go on


@pytest.fixture
def uninterrupted(color_folder, tmp_path):
    return graft.train(color_folder, out=tmp_path / "reference", **RESUMABLE)


def interrupt_at(monkeypatch, point: str, count: int) -> None:
    """In-process stand-in for a kill: a hard stop (no checkpoint written) the count-th time the loop
    reaches `point`. The subprocess SIGKILL tests are in test_resume.py."""
    import graft.training.loop as loop

    seen = {"n": 0}

    def stop_here(name: str) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] == count:
                raise KeyboardInterrupt

    monkeypatch.setattr(loop, "fault", stop_here)


def test_damaged_last_checkpoint_falls_back_and_still_matches(color_folder, tmp_path, capsys):
    run = graft.train(color_folder, out=tmp_path / "r", **RESUMABLE)
    reference = _weights(run.path)
    store = _store(run)
    last = store.read_index().last
    model = store.root / last / MODEL
    model.write_bytes(model.read_bytes()[:100])  # the newest checkpoint is damaged
    resumed = resume_run(run.path)
    assert f"checkpoint {last} is damaged" in capsys.readouterr().out
    assert resumed.history[-1]["epoch"] == 3
    mine = _weights(run.path)
    assert all(
        torch.equal(mine[k], reference[k]) for k in reference
    )  # the older checkpoint, replayed exactly


def test_best_and_top_k_survive_restarts_and_rotation(color_folder, tmp_path, uninterrupted, monkeypatch):
    interrupt_at(monkeypatch, "step", 12)  # in epoch 3, after the last checkpoint (step 10)
    with pytest.raises(KeyboardInterrupt):
        graft.train(color_folder, out=tmp_path / "r", **RESUMABLE)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "r")
    store, reference = _store(resumed), _store(uninterrupted)
    index = store.read_index()
    assert index.__dict__ == reference.read_index().__dict__  # same best, same top-k, same last
    assert resumed.best_epoch == uninterrupted.best_epoch
    assert store.load(index.best).state["progress"]["epoch"] == resumed.best_epoch
    metrics = [e["metric"] for e in index.top_k]
    assert metrics == sorted(metrics) and len(metrics) == 2  # best first (val_loss: lowest first)
    kept = {index.last, index.best} | {e["name"] for e in index.top_k}
    assert set(store.names()) == kept and all(store.verify(n) is None for n in kept)  # rotation spared them
    bundle = json.loads((resumed.bundle / "graft.json").read_text())
    assert bundle["checkpoint"] == index.best and bundle["metrics"]["epoch"] == resumed.best_epoch


def test_early_stopping_counts_survive_resume(color_folder, tmp_path, monkeypatch):
    stop_early = {**RESUMABLE, "epochs": 6, "patience": 2, "min_delta": 10.0}  # nothing improves by 10
    straight = graft.train(color_folder, out=tmp_path / "a", **stop_early)
    assert straight.stopped == "early stopping" and len(straight.history) == 3  # epoch 1, then 2 bad epochs
    interrupt_at(monkeypatch, "step", 12)  # after epoch 2's checkpoint: one bad epoch counted
    with pytest.raises(KeyboardInterrupt):
        graft.train(color_folder, out=tmp_path / "b", **stop_early)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "b")
    assert resumed.stopped == "early stopping"
    assert _learning(resumed.history) == _learning(straight.history)  # same epochs, same numbers
    again = resume_run(tmp_path / "b")  # an early-stopped run has nothing left to train
    assert _learning(again.history) == _learning(resumed.history)


def _learning(history: list[dict]) -> list[tuple]:
    """The deterministic part of each epoch record (timings differ between runs)."""
    return [(h["epoch"], h["step"], h["train_loss"], h["val_loss"], h["val_acc"], h["lr"]) for h in history]


def test_resume_refuses_a_different_model_and_allows_more_epochs(color_folder, tmp_path, uninterrupted):
    with pytest.raises(
        GraftError, match=r"cannot resume .* with model.name='test_vit': it was trained with 'test_resnet'"
    ):
        resume_run(uninterrupted.path, {"model": "test_vit"})
    with pytest.raises(GraftError, match="optim.lr"):
        resume_run(uninterrupted.path, {"lr": 0.5})
    longer = resume_run(uninterrupted.path, {"epochs": 4})
    assert [h["epoch"] for h in longer.history] == [1, 2, 3, 4]
    with pytest.raises(GraftError, match="not a graft run"):
        resume_run(tmp_path)


def test_gradual_schedule_changes_are_refused_on_resume(color_folder, tmp_path):
    run = graft.train(color_folder, out=tmp_path / "r", **{**RESUMABLE, "strategy": "gradual", "epochs": 2})
    with pytest.raises(GraftError, match="would change when gradual unfreezes"):
        resume_run(run.path, {"epochs": 5})


def test_save_every_minutes_adds_mid_epoch_checkpoints(color_folder, tmp_path):
    once = graft.train(color_folder, out=tmp_path / "a", **{**TINY, "epochs": 1, "num_workers": 0})
    often = graft.train(
        color_folder,
        out=tmp_path / "b",
        **{**TINY, "epochs": 1, "num_workers": 0, "save_every_minutes": 1e-6},
    )
    assert once.checkpoints_written == 1  # end of epoch only
    assert often.checkpoints_written > 2  # every step is "due" after a microsecond-scale interval
    assert _store(often).read_index().last == _store(once).read_index().last  # the epoch-end one is last
