"""Image files -> 8-bit RGB PIL images, the one decoder graft uses everywhere: training, `graft check`,
prediction, and the torch-free ONNX path (so this module imports only PIL and NumPy).
"""

from __future__ import annotations

from pathlib import Path

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
