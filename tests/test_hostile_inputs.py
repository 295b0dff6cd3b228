"""Hostile or unlucky inputs: graft never runs code from a model folder, and says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_review_csv
from test_cli import graft

EVIL = """
from pathlib import Path
Path(__file__).with_name("RAN").write_text("the folder's code ran")
from transformers import BertConfig
class EvilConfig(BertConfig):
    model_type = "graft-evil"
"""


def plant_remote_code(folder: Path, config_name: str = "config.json") -> Path:
    """Make `folder`'s config point transformers at a module in the folder (which writes a marker if run)."""
    (folder / "evil.py").write_text(EVIL)
    path = folder / config_name
    config = json.loads(path.read_text()) if path.is_file() else {}
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.Evil"}
    if config_name == "config.json":
        config["model_type"] = "graft-evil"  # unknown to transformers: only the folder's code could load it
    path.write_text(json.dumps(config))
    return folder / "RAN"


@pytest.mark.parametrize("config_name", ["config.json", "tokenizer_config.json"])
def test_train_refuses_a_model_folder_that_maps_to_its_own_code(tmp_path, tiny_bert, config_name):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    marker = plant_remote_code(model, config_name)
    data = make_review_csv(tmp_path / "reviews.csv", per_class=8)
    result = graft("train", data, "--model", model, "--epochs", "1", "--out", tmp_path / "run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "auto_map" in result.stderr and str(model / config_name) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_predict_refuses_a_bundle_that_maps_to_its_own_code(tmp_path, tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bundle = tmp_path / "bundle"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2).save_pretrained(
        str(bundle)
    )
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(str(bundle))
    meta = {"task": "text-classification", "classes": ["negative", "positive"], "num_classes": 2,
            "preprocessing": {"max_length": 32}}  # fmt: skip
    (bundle / "graft.json").write_text(json.dumps(meta))
    assert graft("predict", bundle, "a fine film").returncode == 0  # the same bundle, untouched, predicts
    marker = plant_remote_code(bundle)
    result = graft("predict", bundle, "a fine film")
    assert result.returncode == 2 and "auto_map" in result.stderr, result.stdout + result.stderr
    assert not marker.exists()


def test_bundles_never_carry_auto_map(tmp_path, tiny_bert):
    from transformers import AutoConfig

    from graft.export.bundle import write_bundle
    from graft.models.text_encoder import build_text

    built, tokenizer = build_text(str(tiny_bert), 2, ["a", "b"])
    built.model.hf.config.auto_map = {"AutoConfig": "elsewhere.Config"}  # as if a config had carried one in
    out = write_bundle(tmp_path / "model", built, built.model, ["a", "b"], {}, {}, tokenizer)
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    assert AutoConfig.from_pretrained(str(out)).model_type == "bert"


def _copy_bundle(trained_run, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained_run.bundle, tmp_path / "bundle"))


def _flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: _flip_byte(b / "model.safetensors"), "model.safetensors does not match its checksum"),
        (lambda b: _truncate(b / "model.safetensors"), "model.safetensors is .* bytes, the manifest says"),
        (lambda b: (b / "config.json").unlink(), "config.json is missing"),
        (lambda b: (b / "MANIFEST.json").write_text("[]"), "MANIFEST.json is not a manifest"),
    ],
    ids=["bit-flip", "truncated", "file-missing", "manifest-not-a-mapping"],
)
@pytest.mark.parametrize("command", ["predict", "eval", "export"])
def test_a_damaged_bundle_is_named_and_never_loaded(trained_run, tmp_path, damage, message, command):
    import re

    bundle = _copy_bundle(trained_run, tmp_path)
    damage(bundle)
    image = next(Path(trained_run.config.data.path).rglob("*.png"))
    args = {"predict": ["predict", bundle, image], "eval": ["eval", bundle, "--data", trained_run.config.data.path,
            "--out", tmp_path / "report"], "export": ["export", bundle, "--format", "torchscript"]}[command]  # fmt: skip
    result = graft(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(f"bundle .* is damaged: {message}", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_graft_load_verifies_the_bundle_and_an_intact_copy_loads(trained_run, tmp_path):
    import graft
    from graft.errors import GraftError

    bundle = _copy_bundle(trained_run, tmp_path)
    assert graft.load(bundle).classes == trained_run.classes  # the manifest matches a faithful copy
    _flip_byte(bundle / "model.safetensors")
    with pytest.raises(GraftError, match="is damaged: model.safetensors does not match its checksum"):
        graft.load(bundle)


@pytest.mark.parametrize(
    "weights",
    [b"", b"\x80\x04not a safetensors file", None],
    ids=["empty", "garbage", "a-pickle-named-safetensors"],
)
def test_a_bundle_without_manifest_whose_weights_are_not_weights_is_one_line(trained_run, tmp_path, weights):
    import pickle

    bundle = _copy_bundle(trained_run, tmp_path)
    (bundle / "MANIFEST.json").unlink()  # as written before bundles had one: nothing to verify against
    (bundle / "model.safetensors").write_bytes(weights if weights is not None else pickle.dumps({"w": [1.0]}))
    result = graft("predict", bundle, next(Path(trained_run.config.data.path).rglob("*.png")))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot load the bundle {bundle}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "manifest", ["[]", "{}", '{"model.safetensors": 3}'], ids=["list", "empty", "bad-entry"]
)
def test_a_checkpoint_with_a_malformed_manifest_falls_back(tmp_path, manifest):
    import torch

    from graft.runs.store import CheckpointStore

    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(1, {"w": torch.zeros(2)}, {"optimizer": {}}, {"progress": {"step": 1}})
    newest = store.save(2, {"w": torch.ones(2)}, {"optimizer": {}}, {"progress": {"step": 2}})
    (tmp_path / "checkpoints" / newest / "MANIFEST.json").write_text(manifest)
    report: list[str] = []
    assert store.latest_good(report).name == "step-000001"
    assert "step-000002 is damaged" in report[0]


@pytest.mark.parametrize(
    ("weights", "message"),
    [("pickle.pt", "refused to unpickle it, nothing in it was run (Trying to load unsupported GLOBAL posix.system"),
     ("pickle.safetensors", "is not a readable safetensors file")],
)  # fmt: skip
def test_weights_that_are_a_pickle_are_refused_in_one_line(tmp_path, color_folder, weights, message):
    import torch

    marker = tmp_path / "RAN"
    torch.save({"w": _Marker(marker)}, tmp_path / weights)
    result = graft("train", color_folder, "--model", "test_resnet", "--weights", tmp_path / weights,
                   "--img-size", "32", "--out", tmp_path / "run")  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not marker.exists()
    assert not (tmp_path / "run").exists()


def test_a_python_tag_in_set_is_refused_not_run(tmp_path, color_folder):
    marker = tmp_path / "RAN"
    result = graft(
        "train", color_folder, "--set", f'optim.lr=!!python/object/apply:os.system ["touch {marker}"]'
    )
    assert (
        result.returncode == 2 and "--set optim.lr:" in result.stderr and "not a YAML value" in result.stderr
    )
    assert not marker.exists()


class _Marker:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


# --- one writer per run folder (runs/lock.py), and a run killed before its first checkpoint ---------------

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


# --- a full disk mid-run: one line, the run stopped and resumable, no temporary left ----------------------

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
