"""The converged head (strategies/probe.py), temperature scaling (evaluation/calibration.py) and auto's
budget rule (strategies/auto.py): pure functions checked against scikit-learn and known answers, then
end to end on real runs (the probe as epoch 0, its bundle before fine-tuning, the calibrated bundle)."""

import json
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

import graft
from conftest import TINY, make_review_csv
from graft.evaluation.calibration import (
    cannot_fit,
    expected_calibration_error,
    fit_temperature,
    fold_temperature,
)
from graft.runs.store import CheckpointStore
from graft.strategies.auto import MIN_EPOCHS, TARGET_EPOCHS, Option, plan_fine_tuning
from graft.strategies.probe import C_GRID, fit_logistic, solve_head, stratified_folds


def _blobs(n: int = 60, d: int = 16, classes: int = 3, spread: float = 1.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g) * spread
    y = torch.arange(n) % classes
    return centers[y] + torch.randn(n, d, generator=g), y


def test_fit_logistic_matches_scikit_learn():
    """Same objective as LogisticRegression(C) (multinomial, lbfgs, unpenalised intercept): same optimum."""
    x, y = _blobs()
    for c in (0.1, 1.0):
        weight, bias = fit_logistic(x, y, 3, c, max_iter=500)
        sk = LogisticRegression(C=c, max_iter=5000, tol=1e-10).fit(x.numpy(), y.numpy())
        np.testing.assert_allclose(weight.numpy(), sk.coef_, atol=2e-3)
        np.testing.assert_allclose(
            (x @ weight.T + bias).softmax(1).numpy(), sk.predict_proba(x.numpy()), atol=1e-3
        )


def test_solve_head_chooses_c_by_cross_validated_log_loss():
    x, y = _blobs(n=90, spread=0.6)  # overlapping classes: the penalty matters
    probe = solve_head(x, y, num_classes=3)
    assert [s["c"] for s in probe.cv] == list(C_GRID)
    assert probe.l2_c == min(probe.cv, key=lambda s: s["log_loss"])["c"]
    assert probe.weight.shape == (3, 16) and probe.bias.shape == (3,)
    assert probe.train_loss < math.log(3)
    # weighted samples: a class weighted up is predicted more often
    weighted = solve_head(x, y, 3, class_weights=torch.tensor([1.0, 1.0, 20.0]))
    assert (weighted.logits(x).argmax(1) == 2).sum() > (probe.logits(x).argmax(1) == 2).sum()


def test_stratified_folds_partition_every_class():
    y = torch.tensor([0] * 7 + [1] * 5 + [2] * 3)
    folds = stratified_folds(y, 3, seed=0)
    assert sorted(torch.cat(folds).tolist()) == list(range(len(y)))
    assert all({0, 1, 2} <= set(y[f].tolist()) for f in folds)


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 5, generator=g) * 2
    targets = torch.multinomial(true_logits.softmax(1), 1, generator=g).flatten()
    calibration = fit_temperature(true_logits * 3.0, targets)  # over-confident by a factor of 3
    assert calibration.temperature == pytest.approx(3.0, rel=0.08)
    assert calibration.val_ece_after < calibration.val_ece_before
    assert calibration.val_nll_after < calibration.val_nll_before
    assert expected_calibration_error(true_logits, targets) < 0.03


def test_fold_temperature_divides_the_logits():
    torch.manual_seed(0)
    head, x = nn.Linear(4, 3), torch.randn(5, 4)
    before = head(x).detach()
    fold_temperature(head, 2.5)
    torch.testing.assert_close(head(x).detach(), before / 2.5)


def test_no_temperature_without_mistakes_or_samples():
    logits = torch.eye(3).repeat(10, 1) * 5
    assert "100%" in cannot_fit(logits, torch.arange(3).repeat(10))
    assert "validation samples" in cannot_fit(logits[:5], torch.arange(3).repeat(10)[:5])
    assert cannot_fit(logits, torch.tensor([1, 1, 2] * 10)) is None


def test_auto_plan_is_the_deepest_option_whose_epochs_fit():
    options = [Option(1, 1.0, "after a"), Option(2, 3.0, "after b"), Option(3, 10.0, "after c")]
    plan = plan_fine_tuning(options, budget_s=20.0, probe_val_acc=0.9, max_epochs=10)
    assert (plan.groups, plan.epochs) == (2, TARGET_EPOCHS)  # 3 epochs of 3 groups would take 30 s
    assert "3 groups would take 10s" in plan.reason
    capped = plan_fine_tuning(options, budget_s=1000.0, probe_val_acc=0.9, max_epochs=4)
    assert (capped.groups, capped.epochs) == (3, 4)
    tight = plan_fine_tuning(options, budget_s=MIN_EPOCHS * 3.0 + 1, probe_val_acc=0.9, max_epochs=10)
    assert (tight.groups, tight.epochs) == (2, MIN_EPOCHS)  # deeper for fewer epochs
    short = plan_fine_tuning(options, budget_s=MIN_EPOCHS * 1.0 + 0.5, probe_val_acc=0.9, max_epochs=10)
    assert (short.groups, short.epochs) == (1, MIN_EPOCHS)
    few = plan_fine_tuning(options, MIN_EPOCHS * 1.0 - 0.5, 0.9, 10)  # the top group, fewer epochs
    assert (few.groups, few.epochs) == (1, MIN_EPOCHS - 1)
    assert plan_fine_tuning(options, 0.9, 0.9, 10).groups == 0  # not even one epoch of the top group
    # The best model's validation pass at the end is paid from the same budget.
    with_val = [Option(1, 1.0, "after a", val_seconds=0.5)]
    assert plan_fine_tuning(with_val, MIN_EPOCHS * 1.0 + 0.4, 0.9, 10).epochs == MIN_EPOCHS - 1
    perfect = plan_fine_tuning(options, 1000.0, 1.0, 10)
    assert perfect.groups == 0 and "no validation error" in perfect.reason
    assert plan_fine_tuning(options, 1000.0, 0.9, 0).groups == 0  # --epochs 0: the probe alone


def test_probe_is_epoch_zero_and_fine_tuning_starts_from_it(color_folder, tmp_path):
    """A pretrained-like start (a --weights file): the head is solved before epoch 1, recorded as epoch 0,
    bundled with its calibration; fine-tuning starts from that head, and the bundle is the better one."""
    from safetensors.torch import save_file

    from graft.models.registry import create_model

    torch.manual_seed(1)
    save_file(
        create_model("test_resnet", 3, pretrained=False).model.state_dict(), str(tmp_path / "w.safetensors")
    )
    run = graft.train(color_folder, out=tmp_path / "r", **{**TINY, "weights": tmp_path / "w.safetensors",
                                                              "strategy": "full", "epochs": 2, "keep_top_k": 3})  # fmt: skip
    assert [h["epoch"] for h in run.history] == [0, 1, 2]
    assert run.history[0]["step"] == 0 and run.first_bundle_seconds is not None
    first = CheckpointStore(run.path / "checkpoints").load("step-000000")
    assert first.state["progress"]["history"][0]["epoch"] == 0
    head = first.model["fc.weight"]
    assert head.abs().sum() > 0  # solved, not the zero init
    rows = (run.path / "metrics.csv").read_text().splitlines()
    assert rows[1].startswith("0,0,")
    best = max(run.history, key=lambda h: (h["val_acc"], -h["val_loss"]))
    meta = json.loads((run.path / "model" / "graft.json").read_text())
    assert meta["metrics"]["epoch"] == best["epoch"]


def test_eighty_separable_texts_reach_100_percent_with_the_defaults(tmp_path):
    """The issue's case: 80 texts a k-NN separates perfectly. The old head (zero init, AdamW, 2 epochs)
    stayed at 50%; the solved head gets them all, and auto sees nothing left to fine-tune."""
    data = make_review_csv(tmp_path / "reviews.csv", per_class=40)
    run = graft.train(data, out=tmp_path / "r", quiet=True, log="csv")
    assert run.history[0]["epoch"] == 0 and run.history[0]["val_acc"] == 1.0
    decision = json.loads((run.path / "advice.json").read_text())
    assert decision["plan"]["groups"] == 0 and "no validation error" in decision["reason"]
    assert run.config.strategy.name == "linear-probe" and run.config.train.epochs == 0


def _weights(tmp_path) -> dict:
    """TINY, started from a weights file (pretrained as far as graft knows: the probe runs)."""
    from safetensors.torch import save_file

    from graft.models.registry import create_model

    torch.manual_seed(1)
    save_file(
        create_model("test_resnet", 3, pretrained=False).model.state_dict(), str(tmp_path / "w.safetensors")
    )
    return {**TINY, "weights": tmp_path / "w.safetensors"}


def test_the_bundle_is_calibrated_in_its_weights(tmp_path):
    """Temperature scaling is folded into the head: plain timm on the bundle gives the calibrated
    probabilities graft predicts, and graft.json / the report say what it changed."""
    import timm
    from PIL import Image

    from conftest import make_color_images
    from graft.data.discover import discover

    data = make_color_images(tmp_path / "colors", per_class=40)  # 24 validation samples
    for i, (source, target) in enumerate([("red", "green"), ("green", "blue"), ("blue", "red")] * 4):
        (data / source / f"{i:03d}.png").rename(data / target / f"moved{i:03d}.png")  # wrong labels: mistakes
    run = graft.train(data, out=tmp_path / "r", **{**_weights(tmp_path), "strategy": "linear-probe"})
    meta = json.loads((run.path / "model" / "graft.json").read_text())
    calibration = meta["calibration"]
    assert calibration is not None, "the wrong labels make validation mistakes: a temperature is fit"
    assert calibration["temperature"] > 0 and calibration["samples"] == len(
        discover(run.path / "split.csv").val
    )
    assert calibration["val_nll_after"] <= calibration["val_nll_before"] + 1e-6
    report = json.loads((run.path / "report" / "metrics.json").read_text())
    assert report["calibration"]["temperature"] == pytest.approx(calibration["temperature"])
    # The report at the end of training reused the logits training computed; graft eval recomputes them
    # from the bundle, through the images: the same numbers.
    from graft.evaluation.evaluate import evaluate

    again = evaluate(run.path, out=tmp_path / "again").metrics
    assert again["accuracy"] == report["accuracy"] and again["loss"] == pytest.approx(
        report["loss"], abs=1e-4
    )
    assert again["ece"] == pytest.approx(report["ece"], abs=1e-4)
    assert report["calibration"]["ece_before"] == pytest.approx(calibration["val_ece_before"], abs=1e-4)
    val = discover(run.path / "split.csv").val[:4]
    ours = graft.load(run.path).predict([s.path for s in val], top_k=1)
    model = timm.create_model(f"local-dir:{run.path / 'model'}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    with torch.inference_mode():
        probs = model(torch.stack([transform(Image.open(s.path).convert("RGB")) for s in val])).softmax(1)
    assert [p.score for p in ours] == pytest.approx(probs.max(1).values.tolist(), abs=1e-5)


def test_time_limit_stops_at_an_epoch_end_and_bundles_the_best(color_folder, tmp_path):
    run = graft.train(color_folder, out=tmp_path / "r", **{**TINY, "strategy": "full", "epochs": 200,
                                                         "time_limit": "3s", "log": "csv"})  # fmt: skip
    assert run.stopped == "time limit" and 1 <= len(run.history) < 200
    assert run.config.train.time_limit == 3.0
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "finished" and (run.path / "model" / "graft.json").is_file()


def test_the_first_bundle_exists_before_fine_tuning(color_folder, tmp_path):
    """Killed in the first fine-tuning step, a run already has the solved head's bundle, calibrated."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    from graft.models.registry import create_model

    torch.manual_seed(1)
    save_file(
        create_model("test_resnet", 3, pretrained=False).model.state_dict(), str(tmp_path / "w.safetensors")
    )
    graft_bin = str(Path(sys.executable).parent / "graft")
    command = [graft_bin, "train", str(color_folder), "--model", "test_resnet", "--weights", str(tmp_path / "w.safetensors"),
               "--img-size", "32", "--strategy", "full", "--epochs", "3", "--batch-size", "8", "--num-workers", "0",
               "--out", str(tmp_path / "r"), "-q"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRAFT_FAULT": "step@1"}
    killed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode != 0 and "first bundle written" in killed.stdout
    meta = json.loads((tmp_path / "r" / "model" / "graft.json").read_text())
    assert meta["metrics"]["epoch"] == 0 and meta["checkpoint"] == "step-000000"
    assert graft.load(tmp_path / "r").predict([next(color_folder.rglob("*.png"))])[0].label in meta["classes"]


def test_auto_measures_decides_and_writes_its_choice_into_the_config(tmp_path):
    """--strategy auto on photo crops: the probe, the measured options and the plan in advice.json; the
    config saved with the run has the plan resolved (no "auto" left), so resume repeats it exactly."""
    from conftest import make_photo_crops

    data = make_photo_crops(tmp_path / "photos", per_class=12, size=48)
    settings = {**_weights(tmp_path), "img_size": 48, "strategy": "auto", "epochs": 3, "time_limit": "2m"}
    run = graft.train(data, out=tmp_path / "r", **settings)
    decision = json.loads((run.path / "advice.json").read_text())
    assert {"probe", "plan", "reason", "time_limit_s"} <= set(decision)
    options = decision["plan"]["options"]
    assert options and all(o["seconds_per_epoch"] > 0 for o in options)
    saved = (run.path / "config.yaml").read_text()
    assert "name: auto" not in saved and "time_limit: 120.0" in saved
    assert run.config.strategy.name in ("discriminative", "linear-probe")
    if decision["plan"]["groups"]:
        assert run.config.strategy.train_groups == decision["plan"]["groups"]
        assert len(run.history) == 1 + run.config.train.epochs
    # The end of the decision: which epoch was bundled, and whether fine-tuning beat the solved head.
    assert decision["bundled_epoch"] == run.best_epoch
    assert ("solved head" in decision["outcome"]) == (run.best_epoch == 0)
    assert decision["outcome"] in (run.path / "report" / "report.md").read_text()


def test_text_epoch_estimate_scales_the_timed_batch_by_the_padded_lengths():
    """auto times one median-length batch of texts; an epoch's batches (bucketed by length) pad to their
    own longest text, so the estimate scales by their mean padded length. Images are not scaled."""
    from types import SimpleNamespace

    from graft.training.frozen import _length_scale

    lengths = torch.tensor([10] * 32 + [20] * 32 + [60] * 32)  # three batches of 32: padded to 10, 20, 60
    frozen = SimpleNamespace(tensors={"hf.layer.4/train_len": lengths})
    median_batch = {"attention_mask": torch.ones(32, 20)}
    assert _length_scale(frozen, "train", median_batch, 32) == pytest.approx(30 / 20)
    assert _length_scale(frozen, "val", median_batch, 32) == 1.0  # no validation lengths recorded
    assert _length_scale(frozen, "train", torch.zeros(32, 3, 8, 8), 32) == 1.0  # images
