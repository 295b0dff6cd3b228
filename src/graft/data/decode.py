"""Image files (and pixel arrays) -> 8-bit RGB PIL images, the one decoder graft uses everywhere: training,
`graft check`, prediction, the in-memory datasets graft writes to files, and the torch-free ONNX path (so
this module imports only PIL and NumPy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from graft.errors import GraftError


def load_image(path: Path) -> Image.Image:
    """Decode to 8-bit RGB the way a person would see the file.

    EXIF orientation is applied (phone photos are stored sideways); 16-bit images are scaled, not clipped
    (PIL's convert("RGB") turns most of a 16-bit image white); transparency is composited onto white
    (dropping alpha would show whatever color the transparent pixels happen to store, often black).
    """
    try:
        with Image.open(path) as img:
            return to_rgb(ImageOps.exif_transpose(img))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise GraftError(f"cannot read image {path}: {err}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(img, dtype=np.float64)
        top = 65535.0 if pixels.max() > 255 else 255.0
        img = Image.fromarray((pixels.clip(0, top) * (255.0 / top)).round().astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


CHANNELS = (1, 3, 4)  # gray, RGB, RGBA


def tensor_values(t: Any) -> np.ndarray:
    """A torch tensor as a numpy array, on the CPU, without importing torch (the ONNX path stays torch-free);
    bfloat16, which numpy has no dtype for, as float32."""
    t = t.detach().cpu()
    return (t.float() if t.is_floating_point() else t).numpy()


NORMALIZED_HINT = "already normalized? pass the image before normalization, or uint8 0-255"


def array_to_image(
    a: np.ndarray, channels_first: bool, what: str, hint: str = NORMALIZED_HINT
) -> Image.Image:
    """HxW, HxWxC (numpy's layout) or CxHxW (torch's; `channels_first` picks it when both fit, as for a
    3x3x3 tensor) -> an RGB PIL image, decoded as files are (gray expanded, transparency composited on
    white: `to_rgb`). Float pixels are in [0, 1] and rounded to 8 bits, as an image file holds them, so an
    array predicts exactly as the file graft writes from it trains. `what` starts each error ("cannot
    predict on a tensor of shape ..."); `hint` follows float pixels out of [0, 1]."""
    if a.ndim == 3:
        first, last = a.shape[0] in CHANNELS, a.shape[-1] in CHANNELS
        if first and (channels_first or not last):
            a = a.transpose(1, 2, 0)
        elif not last:
            raise GraftError(f"{what}: an image has 1, 3 or 4 channels, first (CxHxW) or last (HxWxC)")
        if a.shape[-1] == 1:
            a = a[..., 0]
    elif a.ndim != 2:
        raise GraftError(
            f"{what}: an image is HxW, HxWxC or CxHxW, a batch of them NxHxWxC (NxCxHxW for tensors)"
        )
    if a.size == 0:
        raise GraftError(f"{what}: it has no pixels")
    if a.dtype.kind == "f":
        lo, hi = float(np.min(a)), float(np.max(a))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            raise GraftError(
                f"{what}: float pixels must be in [0, 1], these run from {lo:.3g} to {hi:.3g} ({hint})"
            )
        a = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif a.dtype.kind in "iu" and a.dtype != np.uint8:
        lo, hi = int(np.min(a)), int(np.max(a))
        if lo < 0 or hi > 255:
            raise GraftError(f"{what}: integer pixels must be 0-255, these run from {lo} to {hi} (16-bit? "
                             "scale them: (a // 257).astype(np.uint8), or to float in [0, 1])")  # fmt: skip
        a = a.astype(np.uint8)
    elif a.dtype != np.uint8:
        raise GraftError(f"{what}: pixels are uint8 (0-255) or float (0-1), not {a.dtype} (a mask: "
                         "a.astype(np.uint8) * 255)")  # fmt: skip
    return to_rgb(Image.fromarray(np.ascontiguousarray(a)))
