"""The model's eval preprocessing in PIL + NumPy, for serving an export without torch.

Mirrors what training validated with (timm's `transforms_imagenet_eval` on a PIL image, via torchvision's
PIL backend) step by step, so an ONNX model sees the same pixels as the PyTorch one:

  decode (EXIF rotation, 16-bit scaled, transparency on white)       graft.data.decode.load_image
  resize: shorter side to floor(size / crop_pct) ("center"), both sides ("squash"),
          or longer side, then pad with the mean color ("border")      PIL resize, same filter
  center crop to the input size (zero padding if the image is smaller) torchvision's rounding
  to float in [0, 1], then (x - mean) / std, CHW float32

tests/test_export.py checks the result against timm's transform for every crop mode. Everything the
steps need is the bundle's `preprocessing` (graft.json), which the export sidecar JSON repeats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from graft.errors import GraftError

# timm's interpolation names -> the PIL filters torchvision uses for them on PIL images.
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
DEFAULT_CROP_PCT = 0.875  # timm's default when a config has none


def preprocess(img: Image.Image, preprocessing: dict[str, Any]) -> np.ndarray:
    """One RGB image -> the model input, (3, H, W) float32."""
    _, height, width = preprocessing["input_size"]
    crop_pct = preprocessing.get("crop_pct") or DEFAULT_CROP_PCT
    mode = preprocessing.get("crop_mode") or "center"
    name = preprocessing.get("interpolation", "bilinear")
    if name not in PIL_FILTERS:
        raise GraftError(f"interpolation {name!r} is not supported here; one of {', '.join(PIL_FILTERS)}")
    resample = PIL_FILTERS[name]
    scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    fill = 0
    if mode == "squash":
        img = _resize(img, scale, resample)
    elif (
        mode == "border"
    ):  # longest side to scale, pad with the mean color (timm ResizeKeepRatio + CenterCropOrPad)
        img = _resize(img, _keep_ratio(img, scale, longest=True), resample)
        fill = tuple(round(255 * v) for v in preprocessing["mean"])
    elif scale[0] == scale[1]:  # torchvision Resize(int): shorter side to `scale`, the other truncated
        short, long = sorted(img.size)
        new_short, new_long = scale[0], int(scale[0] * long / short)
        img = _resize(
            img, (new_long, new_short) if img.width <= img.height else (new_short, new_long), resample
        )
    else:
        img = _resize(img, _keep_ratio(img, scale, longest=False), resample)
    img = _center_crop(img, height, width, fill)
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)  # (H, W, 3), as ToTensor
    mean = np.asarray(preprocessing["mean"], dtype=np.float32)
    std = np.asarray(preprocessing["std"], dtype=np.float32)
    return ((x - mean) / std).transpose(2, 0, 1).copy()  # (3, H, W)


def preprocess_batch(images: Sequence[Image.Image], preprocessing: dict[str, Any]) -> np.ndarray:
    """(B, 3, H, W) float32."""
    return np.stack([preprocess(img.convert("RGB"), preprocessing) for img in images])


def describe(preprocessing: dict[str, Any]) -> list[str]:
    """The steps in words, for the export sidecar: enough to reimplement them in any language."""
    _, height, width = preprocessing["input_size"]
    crop_pct = preprocessing.get("crop_pct") or DEFAULT_CROP_PCT
    mode = preprocessing.get("crop_mode") or "center"
    interp = preprocessing.get("interpolation", "bilinear")
    scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    resize = {
        "center": f"resize the shorter side to {scale[0]} px keeping the aspect ratio"
        if scale[0] == scale[1]
        else f"resize keeping the aspect ratio so the image covers {scale[0]}x{scale[1]} (HxW)",
        "squash": f"resize to {scale[0]}x{scale[1]} (HxW), aspect ratio not kept",
        "border": f"resize keeping the aspect ratio so the image fits in {scale[0]}x{scale[1]} (HxW), "
        "pad with the mean color",
    }[mode]
    return [
        "decode to 8-bit RGB (EXIF rotation applied, 16-bit scaled, transparency composited on white)",
        f"{resize} ({interp}, PIL filter)",
        f"center crop {height}x{width} (HxW): top = round((h - {height}) / 2), left = round((w - {width}) / 2)",
        "to float32 in [0, 1] (pixel / 255), HWC -> CHW",
        f"normalize per channel: (x - mean) / std, mean {list(preprocessing['mean'])}, std {list(preprocessing['std'])}",
    ]


def _keep_ratio(img: Image.Image, scale: tuple[int, int], longest: bool) -> tuple[int, int]:
    """timm's ResizeKeepRatio: (h, w) scaled by one ratio so the shorter (or longer) side fits `scale`."""
    ratio_h, ratio_w = img.height / scale[0], img.width / scale[1]
    ratio = max(ratio_h, ratio_w) if longest else min(ratio_h, ratio_w)
    return round(img.height / ratio), round(img.width / ratio)


def _resize(img: Image.Image, size_hw: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    if (img.height, img.width) == tuple(size_hw):
        return img  # torchvision returns the image untouched when the size already matches
    return img.resize((size_hw[1], size_hw[0]), resample)


def _center_crop(img: Image.Image, height: int, width: int, fill: int | tuple[int, ...]) -> Image.Image:
    """torchvision's center_crop: pad (left/top get the smaller half) when the image is smaller, then crop
    at round((size - crop) / 2)."""
    if width > img.width or height > img.height:
        left = (width - img.width) // 2 if width > img.width else 0
        top = (height - img.height) // 2 if height > img.height else 0
        padded = Image.new("RGB", (max(width, img.width), max(height, img.height)), fill)
        padded.paste(img, (left, top))
        img = padded
    top = int(round((img.height - height) / 2.0))
    left = int(round((img.width - width) / 2.0))
    return img.crop((left, top, left + width, top + height))
