"""One image file decoded as training will decode it: size, mode, content and perceptual hashes, and what
is wrong with it or what decoding converts (the data check's per-file pass, data/check.py)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

EXIF_ORIENTATION = 0x0112
# Modes that decode but have no faithful 8-bit RGB: PIL would clip float pixels (0..1 turns black).
UNSUPPORTED_MODES = {"F": "unsupported mode F (32-bit float pixels); save it as an 8- or 16-bit PNG"}


@dataclass
class ImageInfo:
    path: Path
    sha256: str = ""
    size: tuple[int, int] | None = None
    mode: str | None = None
    phash: int | None = None  # None for flat images, whose perceptual hash says nothing
    problem: str | None = None  # why the file cannot be used
    conversion: str | None = None  # what decoding does to make it 8-bit RGB, upright


def inspect_image(path: Path) -> ImageInfo:
    """Decode one file fully, as training will (truncation only shows when the pixels are read)."""
    import imagehash

    from graft.data.decode import to_rgb

    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return ImageInfo(path, problem=f"cannot read ({err.strerror})")
    if not data:
        return ImageInfo(path, problem="empty file (0 bytes)")
    info = ImageInfo(path, sha256=hashlib.sha256(data).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as img:
            info.mode, info.size = img.mode, img.size
            img.load()
            rotated = img.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
            transparent = "transparency" in img.info
            rgb = to_rgb(ImageOps.exif_transpose(img))
    except UnidentifiedImageError:
        info.problem = "not an image (no decoder recognises it)"
        return info
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        info.problem = f"cannot decode ({str(err).strip() or type(err).__name__})"
        return info
    if info.mode in UNSUPPORTED_MODES:
        info.problem = UNSUPPORTED_MODES[info.mode]
        return info
    info.conversion = _conversion(info.mode, transparent, rotated)
    gray = rgb.convert("L").resize((32, 32))
    if max(gray.getextrema()) - min(gray.getextrema()) > 8:
        info.phash = int(str(imagehash.phash(rgb)), 16)
    return info


def _conversion(mode: str, transparent: bool, rotated: bool) -> str | None:
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        what = "16-bit scaled to 8-bit"
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and transparent):
        what = "transparency composited on white"
    elif mode in ("L", "1"):
        what = "grayscale expanded to RGB"
    elif mode != "RGB":
        what = f"{mode} converted to RGB"
    else:
        what = None
    if rotated:
        what = f"{what}, EXIF orientation applied" if what else "EXIF orientation applied"
    return what
