"""Multi-label and regression train with the guarantees single-label has: the task is read from the labels
and said in the header, the bundle stores what decodes it (thresholds; the target's scaling folded into the
head), and a run killed mid-epoch resumes into exactly the run that never died."""

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from graft.tasks import MultiLabel, Regression, create_task, tune_thresholds
from test_eval_tasks import multi_label_images, regression_images, write_csv
from test_resume import RUN, assert_same_run, graft


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tasks")
    return {
        "multi-label": write_csv(root / "scenes.csv", ["path", "labels"], multi_label_images(root / "ml")),
        "regression": write_csv(root / "ages.csv", ["path", "target"], regression_images(root / "rg")),
    }


@pytest.fixture(scope="module")
def references(tables, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for task, data in tables.items():
        run = tmp_path_factory.mktemp(task) / "run"
        result = graft("train", data, *RUN, "--out", run)
        assert result.returncode == 0, result.stderr
        out[task] = run
    return out


@pytest.mark.parametrize("task", ["multi-label", "regression"])
def test_the_task_is_detected_said_and_bundled(tables, references, task):
    run = references[task]
    header = (run / "config.yaml").read_text()
    assert (
        f"task: {task}" in header
        and f"monitor: {'val_map' if task == 'multi-label' else 'val_mae'}" in header
    )
    meta = json.loads((run / "model" / "graft.json").read_text())
    spec = meta["task_spec"]
    assert spec["name"] == task
    metrics = meta["metrics"]
    if task == "multi-label":
        assert spec["problem_type"] == "multi_label_classification" and meta["classes"] == [
            "blue",
            "green",
            "red",
        ]
        assert len(spec["thresholds"]) == 3 and all(0 < t < 1 for t in spec["thresholds"])
        assert 0 <= metrics["val_map"] <= 1 and "val_f1" in metrics
    else:
        assert spec["problem_type"] == "regression" and meta["num_classes"] == 1
        # The bundled head outputs the target itself: its bias sits near the training mean, not near 0.
        assert spec["train_std"] > 10 and metrics["val_mae"] < spec["train_std"]
    history = (run / "metrics.csv").read_text().splitlines()
    assert ("val_map" if task == "multi-label" else "val_mae") in history[0]


@pytest.mark.parametrize("task", ["multi-label", "regression"])
def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tables, references, tmp_path, task):
    out = tmp_path / "run"
    killed = graft("train", tables[task], *RUN, "--out", out, fault="step@7")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = graft("resume", out, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(out, references[task])


def test_regression_bundle_outputs_the_target_in_its_units(references):
    """The head's weights in the bundle are the checkpoint's times the training std, its bias shifted by the
    mean: what the model outputs before bundling is standardised, after it the number itself."""
    run = references["regression"]
    spec = json.loads((run / "model" / "graft.json").read_text())["task_spec"]
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    trained = load_file(str(run / "checkpoints" / index["best"] / "model.safetensors"))
    bundled = load_file(str(run / "model" / "model.safetensors"))
    head = next(k for k in trained if k.endswith("fc.weight") or k.endswith("classifier.weight"))
    bias = head.replace("weight", "bias")
    assert torch.allclose(bundled[head], trained[head] * spec["train_std"], atol=1e-5)
    assert torch.allclose(bundled[bias], trained[bias] * spec["train_std"] + spec["train_mean"], atol=1e-4)


def test_tasks_decode_and_score_as_documented():
    multi = create_task("multilabel", ["a", "b", "c"])
    assert isinstance(multi, MultiLabel)
    targets = multi.targets([(0,), (1, 2), ()])
    assert targets.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    logits = torch.tensor([[3.0, -3.0, -3.0], [-3.0, 2.0, 0.2], [-2.0, -2.0, -2.0]])
    assert multi.metrics(logits, targets)["val_map"] == pytest.approx(1.0)
    decoded = MultiLabel(3, [0.5, 0.5, 0.5]).decode(logits, ["a", "b", "c"])
    assert [d.value for d in decoded] == [["a"], ["b", "c"], []]
    # A rare label's best cut-off is low (its probabilities are); one with under 5 positives keeps 0.5.
    scores = torch.tensor([[-1.0, -1.0]] * 6 + [[-3.0, -3.0]] * 20)
    truth = torch.tensor([[1.0, 1.0]] * 4 + [[1.0, 0.0]] * 2 + [[0.0, 0.0]] * 20)
    tuned = tune_thresholds(scores, truth)
    assert (
        torch.sigmoid(torch.tensor(-3.0)) < tuned[0] < torch.sigmoid(torch.tensor(-1.0)) and tuned[1] == 0.5
    )
    regression = create_task("regression", ["age"], [10.0, 20.0, 30.0])
    assert isinstance(regression, Regression) and regression.mean == 20.0
    standardised = regression.targets([10.0, 30.0])
    assert standardised.tolist() == [-1.0, 1.0]
    assert regression.metrics(standardised[:, None], standardised)["val_mae"] == 0.0
    assert regression.metrics(torch.zeros(2, 1), standardised)["val_mae"] == pytest.approx(10.0)


def test_a_file_under_several_class_folders_is_one_multi_label_sample(tmp_path):
    """Symlinks and copies of an image in other class folders: one sample with all those labels (auto finds
    copies that keep their name; --task multi-label hashes every file, so renamed copies count too)."""
    import shutil

    from conftest import make_color_images
    from graft.data.discover import discover

    root = make_color_images(tmp_path / "scenes", per_class=6)
    reds = [root / "red" / name for name in ("linked.png", "copied.png", "original.png")]
    for i, path in enumerate(reds):
        (root / "red" / f"{i:03d}.png").rename(path)
    (root / "blue" / "elsewhere.png").symlink_to(reds[0])
    shutil.copy(reds[1], root / "green" / "copied.png")
    shutil.copy(reds[2], root / "green" / "renamed.png")
    auto = discover(root, val_split=0.25)
    assert auto.task.name == "multi-label" and "2 files are under several class folders" in auto.task_reason
    samples = {s.path.name: {auto.classes[i] for i in s.label} for s in auto.train + auto.val}
    assert samples["linked.png"] == {"blue", "red"} and samples["copied.png"] == {"green", "red"}
    assert (
        samples["renamed.png"] == {"green"} and len(auto.train + auto.val) == 19
    )  # 18 files + a renamed copy
    hashed = discover(root, val_split=0.25, task="multi-label")
    merged = {s.path.name: {hashed.classes[i] for i in s.label} for s in hashed.train + hashed.val}
    assert merged["renamed.png"] == {"green", "red"} and len(hashed.train + hashed.val) == 18
    single = discover(root, val_split=0.25, task="single-label")
    assert single.task.name == "single-label" and len(single.train) + len(single.val) == 21


def test_ddp_multi_label_run_matches_the_single_process_run(tmp_path):
    """2 torchrun processes with batch 4 train a multi-label run as one process with batch 8 does (the loss
    and the gathered validation metrics are the task's, computed from every rank's outputs)."""
    import graft as graft_api
    from test_distributed import RUN as DDP_RUN
    from test_distributed import SETTINGS, TORCHRUN, checkpoint, history, run

    rows = multi_label_images(tmp_path / "ml", n=32)
    train = write_csv(tmp_path / "train.csv", ["path", "labels"], rows[:24])
    val = write_csv(tmp_path / "val.csv", ["path", "labels"], rows[24:])
    single = tmp_path / "single"
    try:
        graft_api.train(
            train, val=val, out=single, batch_size=8, **{**SETTINGS, "data.cache_dir": tmp_path / "cache"}
        )
    finally:
        torch.use_deterministic_algorithms(False)
    ddp = tmp_path / "ddp"
    result = run(
        [*TORCHRUN, "train", train, "--val", val, *DDP_RUN, "--batch-size", "4", "--out", ddp],
        tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = checkpoint(ddp).model, checkpoint(single).model
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-3
    for ours, theirs in zip(history(ddp), history(single), strict=True):
        for key in ("train_loss", "val_loss", "val_map", "val_f1"):
            assert abs(ours[key] - theirs[key]) < 1e-4, (key, ours, theirs)
