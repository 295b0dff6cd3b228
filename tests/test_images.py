"""Decoding: what the model sees must be what a person sees in the file."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graft.data.images import load_image
from graft.errors import GraftError


def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    pixels = np.asarray(load_image(tmp_path / "ramp16.png"))[..., 0].astype(int)
    assert pixels.min() == 0 and pixels.max() == 255
    assert abs(pixels.mean() - 127.5) < 2  # a ramp stays a ramp (clipping made 99.6% of it white)


def test_transparency_is_composited_on_white(tmp_path: Path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    rgba[0, 0] = (255, 0, 0, 255)  # one opaque red pixel
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    pixels = np.asarray(load_image(tmp_path / "t.png"))
    assert tuple(pixels[0, 0]) == (255, 0, 0) and tuple(pixels[1, 1]) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.save(tmp_path / "p.png", transparency=0)
    assert tuple(np.asarray(load_image(tmp_path / "p.png"))[0, 0]) == (255, 255, 255)


def test_cmyk_grayscale_and_exif_rotation(tmp_path: Path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert np.asarray(load_image(tmp_path / "c.jpg"))[0, 0].tolist()[0] > 200  # red stays red
    Image.new("L", (4, 4), 77).save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").mode == "RGB"
    wide = Image.new("RGB", (8, 4))
    exif = wide.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    wide.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (4, 8)


def test_unreadable_and_oversized_images_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(GraftError, match="cannot read image .*bad.png"):
        load_image(tmp_path / "bad.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2x the limit: PIL refuses it as a bomb
    with pytest.raises(GraftError, match="cannot read image .*big.png"):
        load_image(tmp_path / "big.png")


def test_augmentation_is_the_same_with_and_without_workers(tmp_path: Path):
    """Each sample's augmentation is drawn from (seed, epoch, index): worker processes (which skip the
    global-RNG save/restore) give the very tensors the main process gives."""
    import torch

    from conftest import make_color_images
    from graft.config import AugmentConfig
    from graft.data.discover import discover
    from graft.data.images import ImageDataset, create_loader, create_transforms

    spec = discover(make_color_images(tmp_path / "colors", per_class=6))
    config = {"input_size": (3, 16, 16), "interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3,
              "crop_pct": 0.875, "crop_mode": "center"}  # fmt: skip
    train_tf, _ = create_transforms(config, AugmentConfig(auto_augment="rand-m9-mstd0.5", color_jitter=0.4))
    batches = {}
    for workers in (0, 2):
        loader = create_loader(ImageDataset(spec.train, train_tf, seed=3), 4, True, workers, seed=3)
        loader.sampler.set_epoch(1, 0)
        batches[workers] = torch.cat([x for x, _ in loader])
    assert torch.equal(batches[0], batches[2])
