"""graft advise / summary / lr-find through the command line, and the strategy flags of graft train."""

import json
from pathlib import Path

from conftest import make_color_images, make_photo_crops, make_review_csv
from test_cli import FAST, graft


def test_advise_measures_contrasting_datasets(tmp_path: Path):
    """ImageNet features separate natural photos (-> linear-probe) but not 64-px digits (-> gradual)."""
    from graft.demos.images import build_digits_folder

    photos = make_photo_crops(tmp_path / "photos")
    digits = build_digits_folder(tmp_path / "digits")
    advice = {}
    for name, data in (("photos", photos), ("digits", digits)):
        result = graft("advise", data, "--img-size", "64", "--json")
        assert result.returncode == 0, result.stderr
        advice[name] = json.loads(result.stdout)
    assert advice["photos"]["strategy"] == "linear-probe" and advice["photos"]["separability"] > 0.9
    assert advice["digits"]["strategy"] == "gradual" and advice["digits"]["separability"] < 0.8
    assert advice["digits"]["input_shift"] > advice["photos"]["input_shift"]  # digits look less like photos
    assert advice["digits"]["median_per_class"] == 144.5 and advice["digits"]["sample_size"] == 400

    text = graft("advise", photos, "--img-size", "64")
    assert "k-NN accuracy" in text.stdout and "next     graft train" in text.stdout


def test_advise_on_text_data(tmp_path: Path, tiny_bert: Path):
    """Text: no image size to show, no BatchNorm shift, and texts are called texts."""
    result = graft("advise", make_review_csv(tmp_path / "reviews.csv"), "--model", str(tiny_bert))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "64 training texts" in result.stdout and "median 32 texts per class" in result.stdout
    assert "sampled texts" in result.stdout and "32 texts per class (little data" in result.stdout
    assert "image" not in result.stdout and "pixels" not in result.stdout


def test_summary_of_a_model_and_of_a_run(tmp_path: Path):
    table = graft("summary", "test_resnet", "--strategy", "gradual", "--stage", "1", "--img-size", "32")
    assert table.returncode == 0, table.stderr
    assert "Trainable params" in table.stdout  # torchinfo's table
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    trains = {r.split("│")[2].strip(): r.split("│")[4].strip() for r in rows if len(r.split("│")) > 5}
    assert trains["head"] == "yes" and trains["layer4.0"] == "yes" and trains["conv1+bn1"] == "frozen"

    data = make_color_images(tmp_path / "colors")
    run = tmp_path / "run"
    assert (
        graft(
            "train", data, *FAST, "--strategy", "gradual", "--unfreeze-at", "1", "--out", run, "-q"
        ).returncode
        == 0
    )
    summary = graft("summary", run)
    assert summary.returncode == 0, summary.stderr
    assert "stage 1 of gradual" in summary.stdout  # the run's own strategy and the stage it reached
    assert graft("summary", "test_resnet").returncode == 0  # default strategy: full


def test_lr_find_writes_a_plot_and_suggests(tmp_path: Path):
    data = make_color_images(tmp_path / "colors")
    result = graft("lr-find", data, "--model", "test_resnet", "--img-size", "32", "--batch-size", "8",
                   "--set", "model.pretrained=false", "--plot", tmp_path / "lr.png")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "suggested lr" in result.stdout and "graft train" in result.stdout
    assert (tmp_path / "lr.png").stat().st_size > 1000


def test_train_strategy_flags(tmp_path: Path):
    data = make_color_images(tmp_path / "colors")
    result = graft("train", data, *FAST, "--strategy", "discriminative", "--layer-decay", "0.5", "--out",
                   tmp_path / "r", "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "discriminative: all 6 groups, LR x0.0312 at conv1+bn1 up to x0.5 at layer4.0, x1 at the head"
        in result.stdout
    )
    bad = graft("train", data, "--strategy", "partial")
    assert bad.returncode == 2 and "strategy.name" in bad.stderr and "gradual" in bad.stderr
