"""The highest-loss samples (single-label; `Worst` holds the other tasks' worst samples), and how one sample is shown: an image thumbnail, or (text tasks) the text.

`sample_html` / `sample_markdown` are the only places that know what a sample looks like; a text task
passes TextSamples as items and gets quoted text instead of pictures, with nothing else changed.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from graft.data.text_tables import TextSample

THUMB = 128  # px: small inputs (the demo's 8x8 digits) are scaled up, pixel-sharp
TEXT_CHARS = 300  # longer texts are cut in the gallery


@dataclass
class GalleryEntry:
    item: Path | TextSample  # an image file, or a text (and its pair)
    true: str
    predicted: str
    p_predicted: float
    p_true: float
    loss: float

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class Worst:
    """A sample the model got most wrong, under a task without a single class (multi-label, regression)."""

    item: Path | TextSample
    true: str  # the true label set, or the true number
    predicted: str
    note: str  # why it is shown: "p(sea) 0.08, threshold 0.40: missed", "error +12.3"
    wrong: bool = True


def highest_loss(
    items: list[Path | TextSample],
    logits: torch.Tensor,
    targets: torch.Tensor,
    classes: list[str],
    n: int = 16,
) -> list[GalleryEntry]:
    """The `n` samples the model is most wrong about (cross-entropy), worst first."""
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    probs = logits.float().softmax(dim=1)
    entries = []
    for i in losses.argsort(descending=True, stable=True)[:n].tolist():
        pred, true = int(probs[i].argmax()), int(targets[i])
        entries.append(GalleryEntry(items[i], classes[true], classes[pred], probs[i, pred].item(),
                                    probs[i, true].item(), losses[i].item()))  # fmt: skip
    return entries


def sample_html(item: Path | TextSample) -> str:
    if isinstance(item, Path):
        return f'<img src="{thumbnail_uri(item)}" alt="{html.escape(item.name)}" title="{html.escape(str(item))}">'
    return "".join(f'<blockquote class="text">{html.escape(_cut(t))}</blockquote>' for t in _texts(item))


def sample_markdown(item: Path | TextSample) -> str:
    if isinstance(item, Path):
        return f"`{item}`"
    return " / ".join("“" + _cut(t).replace("\n", " ").replace("|", "\\|") + "”" for t in _texts(item))


def _texts(item: TextSample) -> list[str]:
    return [item.text] + ([item.pair] if item.pair is not None else [])


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"


def thumbnail_uri(path: Path) -> str:
    """The image as the user sees the file (not the model's crop), fit into THUMB px, as a data: URI."""
    from graft.data.images import load_image

    img = load_image(path)
    scale = THUMB / max(img.size)
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), resample)
    return png_uri(img)


def png_uri(img: Image.Image | bytes) -> str:
    if isinstance(img, Image.Image):
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        img = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(img).decode("ascii")
