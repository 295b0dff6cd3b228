"""`graft check` and the data guards of `graft train`: one generated fixture per bad input, the exact
behaviour asserted (skip + report, conversion, or an error naming the file), leaks, imbalance, NaN losses,
worker deaths, a run directory that cannot hold the run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, checkpoint, make_color_images
from graft.data.check import (
    accuracy_margin,
    apply_checks,
    check_data,
    choose_balance,
    class_weights,
    sample_weights,
)
from graft.data.discover import DataSpec, discover
from graft.data.images import load_image
from graft.data.sampler import ResumableSampler
from graft.data.text_tables import TextSample
from graft.errors import GraftError
from graft.training.guards import check_run_space, explain_failure
from test_cli import GRAFT, assert_user_error, graft


# ---- image files: each maker writes one file into `folder` and returns its path ----
def zero_bytes(folder: Path) -> Path:
    (path := folder / "zero.png").write_bytes(b"")
    return path


def truncated(folder: Path) -> Path:
    data = (folder / "000.png").read_bytes()
    (path := folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return path


def not_an_image(folder: Path) -> Path:
    (path := folder / "notes.jpg").write_text("these are not pixels\n")
    return path


def float_mode(folder: Path) -> Path:
    Image.fromarray(np.full((8, 8), 0.5, np.float32), mode="F").save(path := folder / "float.tiff")
    return path


def cmyk(folder: Path) -> Path:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path := folder / "cmyk.tiff")
    return path


def sixteen_bit(folder: Path) -> Path:
    pixels = np.array([[0, 32768, 65535]] * 3, dtype=np.uint16)
    Image.fromarray(pixels).save(path := folder / "depth16.png")
    return path


def palette_transparency(folder: Path) -> Path:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.save(path := folder / "palette.png", transparency=0)  # index 0 is transparent
    return path


def rgba(folder: Path) -> Path:
    img = Image.new("RGBA", (4, 4), (0, 0, 255, 255))
    img.putpixel((0, 0), (255, 0, 0, 0))  # fully transparent red: must show as white, not red
    img.save(path := folder / "alpha.png")
    return path


def grayscale(folder: Path) -> Path:
    Image.new("L", (4, 4), 100).save(path := folder / "gray.png")
    return path


def exif_rotated(folder: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    Image.new("RGB", (20, 10), (200, 40, 40)).save(path := folder / "phone.jpg", exif=exif)
    return path


def pixel(img: Image.Image, xy=(0, 0)) -> tuple[int, ...]:
    return img.getpixel(xy)


# name -> (maker, "skip" and the reason shown | "convert", what the report says, a check of the decoded image)
BAD_IMAGES = {
    "zero-bytes": (zero_bytes, "skip", "empty file (0 bytes)", None),
    "truncated": (truncated, "skip", "cannot decode (image file is truncated", None),
    "not-an-image": (not_an_image, "skip", "not an image", None),
    "unsupported-mode-F": (float_mode, "skip", "unsupported mode F", None),
    "cmyk": (cmyk, "convert", "CMYK converted to RGB", lambda im: pixel(im) == (255, 0, 0)),
    "16-bit": (sixteen_bit, "convert", "16-bit scaled to 8-bit",
               lambda im: [pixel(im, (x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]),
    "palette-transparency": (palette_transparency, "convert", "transparency composited on white",
                             lambda im: pixel(im) == (255, 255, 255) and pixel(im, (1, 1)) == (255, 0, 0)),
    "rgba": (rgba, "convert", "transparency composited on white",
             lambda im: pixel(im) == (255, 255, 255) and pixel(im, (1, 1)) == (0, 0, 255)),
    "grayscale": (grayscale, "convert", "grayscale expanded to RGB", lambda im: pixel(im) == (100, 100, 100)),
    "exif-orientation": (exif_rotated, "convert", "EXIF orientation applied", lambda im: im.size == (10, 20)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_is_skipped_or_converted(tmp_path: Path, case: str):
    maker, outcome, expected, looks_right = BAD_IMAGES[case]
    root = make_color_images(tmp_path / "data", per_class=6, size=12)
    bad = maker(root / "red")
    spec = discover(root)
    report = check_data(spec, workers=1)
    if outcome == "skip":
        assert report.broken == [(str(bad), report.broken[0][1])] and expected in report.broken[0][1]
        assert any(str(bad) in w and "--strict" in w for w in report.warnings)
        kept = apply_checks(spec, report)
        assert bad not in {s.path for s in kept.train + kept.val}
        assert len(kept.train) + len(kept.val) == len(spec.train) + len(spec.val) - 1
        with pytest.raises(GraftError, match="unreadable file") as err:
            apply_checks(spec, report, strict=True)
        assert str(bad) in str(err.value) and expected in str(err.value)
        if case != "unsupported-mode-F":  # training's decoder fails on it the same way, naming the file
            with pytest.raises(GraftError, match=str(bad)):
                load_image(bad)
    else:
        assert report.broken == []
        assert report.conversions == Counter({expected: 1})
        decoded = load_image(bad)
        assert decoded.mode == "RGB" and looks_right(decoded), (decoded.mode, decoded.size, pixel(decoded))


def _table(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


ROWS = "".join(f"review {i} good,pos\nreview {i} bad,neg\n" for i in range(6))
BAD_TEXTS = {
    "non-utf8": ("t.csv", b"text,label\n" + ROWS.encode() + b"caf\xe9 ok,pos\n", "t.csv:14: not UTF-8 text"),
    "empty-row": ("t.csv", "text,label\n" + ROWS + ",pos\n", "1 row(s) with an empty text, e.g. line(s) 14"),
    "missing-column": ("t.csv", "review,label\n" + ROWS, "has no column 'text' (found: review, label)"),
    "nan-label": ("t.csv", "text,label\n" + ROWS + "more,NaN\n", "without a label (empty or NaN), e.g. line(s) 14"),
    "label-only-in-val": ("d/train.csv", "text,label\n" + ROWS, "validation labels 'meh' never occur"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_TEXTS))
def test_bad_text_table_names_the_file_and_line(tmp_path: Path, case: str):
    name, content, expected = BAD_TEXTS[case]
    path = _table(tmp_path / name, content)
    if case == "label-only-in-val":
        _table(tmp_path / "d" / "val.csv", "text,label\nso so,meh\nfine,pos\n")
        path = path.parent
    with pytest.raises(GraftError) as err:
        discover(path, modality="text")
    assert expected in str(err.value) and (path.name in str(err.value) or "val" in str(err.value))


def test_image_leaks_exact_and_near_found_and_deduped(tmp_path: Path):
    root = tmp_path / "data"
    make_color_images(root / "train", per_class=8, size=24)
    make_color_images(root / "val", per_class=3, size=24, seed=1)
    shutil.copy(root / "train/red/000.png", root / "val/red/copy.png")
    near = Image.open(root / "train/blue/001.png").resize((40, 40), Image.BICUBIC)
    near.save(root / "val/blue/resized.jpg", quality=90)
    spec = discover(root)
    report = check_data(spec, workers=1)
    pairs = {(Path(leak.train).relative_to(root).as_posix(), Path(leak.val).relative_to(root).as_posix(),
              leak.kind) for leak in report.leaks}  # fmt: skip
    assert pairs == {
        ("train/red/000.png", "val/red/copy.png", "exact"),
        ("train/blue/001.png", "val/blue/resized.jpg", "near"),
    }
    assert any("2 validation sample(s) duplicate" in w for w in report.warnings)
    kept = apply_checks(spec, report, dedupe=True)
    assert len(kept.val) == len(spec.val) - 2 and kept.train == spec.train


def test_text_leaks_exact_and_normalised(tmp_path: Path):
    root = tmp_path / "d"
    _table(root / "train.csv", "text,label\n" + ROWS + "Great movie!,pos\n")
    _table(root / "val.csv", "text,label\nGreat movie!,pos\ngreat   MOVIE,pos\nnew text,neg\n")
    spec = discover(root, modality="text")
    report = check_data(spec)
    assert [(leak.val.split("\x00")[0], leak.kind) for leak in report.leaks] == [
        ("Great movie!", "exact"),
        ("great   MOVIE", "near"),
    ]
    assert [s.text for s in apply_checks(spec, report, dedupe=True).val] == ["new text"]
    assert report.lengths["train"] == (2, 3, 3)


@pytest.mark.parametrize(
    "train_counts, balance, warned",
    [
        ([20, 20], "none", False),
        ([30, 12], "loss", False),
        ([30, 10], "loss", True),
        ([100, 5], "sampler", True),
    ],
)
def test_imbalance_chooses_balance_and_warns(train_counts, balance, warned):
    train = [TextSample(f"t{label}-{i}", label) for label, n in enumerate(train_counts) for i in range(n)]
    val = [TextSample(f"v{label}-{i}", label) for label in (0, 1) for i in range(50)]
    report = check_data(DataSpec(["a", "b"], train, val, "test", modality="text"))
    assert (report.balance, choose_balance(train_counts)[0]) == (balance, balance)
    assert any(w.startswith("heavy imbalance") for w in report.warnings) == warned
    assert any(w.startswith("tiny classes: b (5)") for w in report.warnings) == (min(train_counts) < 10)
    assert not any("too small to trust" in w for w in report.warnings)  # 100 val: +-9.8%


def test_small_validation_set_is_flagged_with_its_interval():
    assert accuracy_margin(100) == pytest.approx(0.098)
    train = [TextSample(f"t{i}", i % 2) for i in range(40)]
    report = check_data(DataSpec(["a", "b"], train, train[:20], "test", modality="text"))
    assert any("validation set of 20 is too small to trust" in w and "+-22%" in w for w in report.warnings)
    assert "val accuracy known to +-22% (95%)" in report.lines()[-1]


def test_weighted_sampler_balances_classes_and_resumes():
    labels = [0] * 90 + [1] * 10
    weights = sample_weights(labels, [90, 10])
    sampler = ResumableSampler(100, True, seed=3, weights=weights)
    drawn = []
    for epoch in range(10):
        sampler.set_epoch(epoch)
        order = [i for _, i in sampler]
        assert len(order) == 100
        sampler.set_epoch(epoch, 37)  # resumed mid-epoch: the rest of the same draw
        assert [i for _, i in sampler] == order[37:]
        drawn += order
    minority = sum(labels[i] for i in drawn) / len(drawn)
    assert 0.4 < minority < 0.6
    sampler.set_epoch(0)
    assert [i for _, i in sampler] == [i for _, i in ResumableSampler(100, True, seed=3, weights=weights)]
    assert class_weights([30, 10]) == pytest.approx([40 / 60, 40 / 20])


def test_disk_space_and_out_of_memory_messages(tmp_path: Path):
    check_run_space(tmp_path / "run", n_params=1_000_000, keep_top_k=1)  # fits
    with pytest.raises(GraftError, match=r"not enough disk space .* GiB free, about .* GiB needed"):
        check_run_space(tmp_path / "run", n_params=10**17, keep_top_k=1)
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    err = explain_failure(oom, 64, 1, torch.device("cuda:0"), [])
    assert str(err) == (
        "out of GPU memory on cuda:0 at batch size 64; try --batch-size 32 --accum-steps 2 "
        "(the same effective batch), a smaller --img-size, or --amp bf16"
    )
    assert explain_failure(ValueError("a bug"), 64, 1, torch.device("cpu"), []) is None


def test_read_only_run_directory_fails_before_training():
    """As an unprivileged user (root writes anywhere): the run directory's parent is not writable."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop root")
    nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        str(Path(GRAFT).parent / "python"),
    ]
    if subprocess.run([*nobody, "-c", "import graft"], capture_output=True, timeout=120).returncode != 0:
        pytest.skip(
            "this checkout is private to root (e.g. under a mktemp -d folder): nobody can run its Python"
        )
    top = Path(tempfile.mkdtemp())  # not under pytest's tmp_path, which only root may enter
    try:
        top.chmod(0o755)
        (locked := top / "locked").mkdir(mode=0o555)
        code = "from pathlib import Path; from graft.training.guards import check_run_space; "
        code += f"check_run_space(Path({str(locked / 'run')!r}), 1000, 1)"
        result = subprocess.run([*nobody, "-c", code], capture_output=True, text=True, timeout=120)
        assert f"GraftError: cannot write in {locked} (Permission denied)" in result.stderr, result.stderr
    finally:
        shutil.rmtree(top)


# TINY (conftest) as CLI flags, one epoch
TINY_ARGS = ["--model", "test_resnet", "--no-pretrained", "--img-size", "32", "--epochs", "1", "--batch-size", "8",
             "--lr", "0.01", "--strategy", "full", "--set", "optim.warmup_epochs=0", "--num-workers", "0",
             "--log", "none", "--quiet"]  # fmt: skip


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _bad_dataset(root: Path) -> Path:
    """Colors with a short green class (4x imbalance), one unreadable file, one val copy of a train image."""
    make_color_images(root / "train", per_class=16, size=16)
    make_color_images(root / "val", per_class=4, size=16, seed=1)
    for extra in sorted((root / "train/green").iterdir())[4:]:
        extra.unlink()
    zero_bytes(root / "train/red")
    shutil.copy(root / "train/blue/000.png", root / "val/blue/leak.png")
    return root


def test_graft_check_cli_reports_skips_leaks_and_strict(tmp_path: Path):
    data = _bad_dataset(tmp_path / "bad")
    result = graft("check", data)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert f"skip {data / 'train/red/zero.png'}: empty file (0 bytes)" in out
    assert f"leak val {data / 'val/blue/leak.png'} = train {data / 'train/blue/000.png'}: identical" in out
    assert "imbalance 4.0x -> balance loss" in out and "green 4/4" in out
    report = json.loads(graft("check", data, "--json", "--dedupe").stdout)
    assert report["broken"] == [{"path": str(data / "train/red/zero.png"), "reason": "empty file (0 bytes)"}]
    assert report["kept"] == {"train": 36, "val": 12}
    assert_user_error(
        graft("check", data, "--strict"), "1 unreadable file(s)", str(data / "train/red/zero.png")
    )


def test_graft_train_on_bad_data_keeps_prior_runs_and_skips(tmp_path: Path, trained_run):
    prior = _digests(trained_run.path)
    data = _bad_dataset(tmp_path / "bad")
    strict = graft("train", data, "--strict", "--out", tmp_path / "strict", *TINY_ARGS)
    assert_user_error(strict, str(data / "train/red/zero.png"), "--strict")
    assert not (tmp_path / "strict").exists()
    run = graft("train", data, "--out", tmp_path / "run", "--dedupe", *TINY_ARGS)
    assert run.returncode == 0, run.stderr
    out = " ".join(run.stdout.split())
    assert "1 unreadable file(s) skipped" in out and "1 leaking validation sample(s) dropped" in out
    split = (tmp_path / "run/split.csv").read_text()
    assert "zero.png" not in split and "leak.png" not in split
    assert "balance: loss" in (tmp_path / "run/config.yaml").read_text()
    assert _digests(trained_run.path) == prior


def test_nonfinite_loss_stops_with_step_and_files_and_keeps_checkpoint(tmp_path: Path):
    import graft as api

    data = make_color_images(tmp_path / "colors", per_class=8, size=16)
    settings = {**TINY, "epochs": 2, "lr": 1e30, "save_every": 1, "log": "none", "optim.clip_grad_norm": None}
    with pytest.raises(GraftError) as err:
        api.train(data, out=tmp_path / "run", **settings)
    message = str(err.value)
    assert message.startswith("loss is nan at step ") and "batch: " + str(data) in message
    assert "--lr 1e+30: try a tenth" in message and "--skip-nonfinite N" in message
    saved = checkpoint(tmp_path / "run")  # the checkpoint before the NaN loads and verifies
    assert saved.state["progress"]["step"] >= 1 and not (tmp_path / "run/model").exists()
    with pytest.raises(GraftError, match=r"\(non-finite loss 3, --skip-nonfinite 2\)"):
        api.train(data, out=tmp_path / "run2", **{**settings, "skip_nonfinite": 2})


def test_dead_dataloader_worker_names_the_file(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=8, size=16)
    result = subprocess.run(
        [GRAFT, "train", data, "--out", tmp_path / "run", *TINY_ARGS, "--num-workers", "1", "--set", "log.images=0"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "GRAFT_FAULT": "decode@3"},
    )  # fmt: skip
    assert_user_error(result, "a DataLoader worker died while decoding " + str(data), "--num-workers")


def test_balance_sampler_reaches_the_training_loader(tmp_path: Path):
    from graft.config import resolve_config
    from graft.training.build import build_on_data

    data = make_color_images(tmp_path / "colors", per_class=12, size=16)
    for extra in sorted((data / "green").iterdir())[1:]:  # green: 1 image, 10 times fewer than the others
        extra.unlink()
    cfg = resolve_config(overrides={**TINY, "data": data})
    spec = discover(data)
    md = build_on_data(cfg, spec)  # balance auto, 10x imbalance -> sampler
    assert md.cfg.data.balance == "sampler" and cfg.data.balance == "auto"  # a new config, not the caller's
    sampler = md.train_loader.sampler
    sampler.set_epoch(0)
    drawn = Counter(spec.train[i].label for _, i in sampler)
    assert drawn[spec.classes.index("green")] >= 4  # 1 sample in 21, drawn about a third of the time
    assert md.val_loader.sampler.weights is None
