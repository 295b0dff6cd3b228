"""Pictures for the logs: model inputs back as images, captioned grids, histograms of weights and gradients.

Everything here runs a few times per epoch at most, never per step, except `group_histograms`, which runs
every `log.histogram_every_n_steps` steps and is computed with torch on the training device (one
`histc` per tensor kind and group) so the cost stays in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from graft.monitoring.sink import Captioned, Histogram

TILE = 128  # pixels per grid tile: small inputs (digits at 64 px) are upscaled so labels are readable
CAPTION = 36  # pixels of caption strip under each tile: two lines
BINS = 64


def to_image(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalized CHW model input -> HWC uint8, as the model saw it (augmentation included)."""
    x = x.detach().float().cpu() * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def captioned_grid(items: list[Captioned], columns: int = 8) -> np.ndarray:
    """Tiles with their caption drawn underneath, in rows of `columns`: one HWC uint8 image."""
    columns = min(columns, len(items))
    rows = -(-len(items) // columns)
    grid = Image.new("RGB", (columns * TILE, rows * (TILE + CAPTION)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=14)
    for i, item in enumerate(items):
        left, top = (i % columns) * TILE, (i // columns) * (TILE + CAPTION)
        tile = Image.fromarray(item.image).convert("RGB")
        scale = (TILE - 4) / max(tile.size)
        resample = Image.NEAREST if scale > 1 else Image.BILINEAR  # upscaled small inputs stay crisp
        tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), resample)
        grid.paste(tile, (left + (TILE - tile.width) // 2, top + (TILE - tile.height) // 2))
        for line, text in enumerate(item.caption.split("\n")[:2]):
            draw.text((left + 3, top + TILE + 2 + 16 * line), _fit(draw, text, font), fill="black", font=font)
    return np.asarray(grid)


def _fit(draw: ImageDraw.ImageDraw, text: str, font) -> str:
    while text and draw.textlength(text, font=font) > TILE - 6:
        text = text[:-2] + "…"
    return text


@torch.no_grad()
def group_histograms(model: nn.Module, groups: Sequence, with_grads: bool = True) -> dict[str, Histogram]:
    """`Weights/<group>` and `Gradients/<group>` for each layer group (strategies/groups.py): one flat
    histogram per group, so a 200-layer model gives a dozen readable plots, not 400."""
    params = dict(model.named_parameters())
    out = {}
    for group in groups:
        tensors = [params[n] for n in group.param_names if n in params]
        if not tensors:
            continue
        out[f"Weights/{group.name}"] = _histogram(torch.cat([t.detach().flatten().float() for t in tensors]))
        grads = [t.grad for t in tensors if t.grad is not None]
        if with_grads and grads:
            out[f"Gradients/{group.name}"] = _histogram(
                torch.cat([g.detach().flatten().float() for g in grads])
            )
    return out


def _histogram(values: torch.Tensor) -> Histogram:
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        values = torch.zeros(1, device=values.device)
    lo, hi = values.min().item(), values.max().item()
    if lo == hi:  # a constant tensor (a zero-initialized head): one visible bucket around it
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(values, bins=BINS, min=lo, max=hi)
    return Histogram(
        min=lo,
        max=hi,
        num=values.numel(),
        sum=values.sum().item(),
        sum_squares=values.pow(2).sum().item(),
        edges=np.linspace(lo, hi, BINS + 1),
        counts=counts.cpu().numpy().astype(np.float64),
    )
