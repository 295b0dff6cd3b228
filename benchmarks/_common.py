"""What the comparison suite's contenders share: the demo data, one config, and graft's own `prepare`.

Every contender builds its model, loaders, optimizer and LR schedule through `graft.training.prepare.prepare`
on the same resolved config, so they differ only in the loop that drives them: same pretrained weights and
zeroed head, same seeded DataLoader (workers, batch size, order, augmentation), same AdamW param groups,
same seed and thread count.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def digits_folder(work: Path, every: int = 1) -> Path:
    """The demo's digits as PNG class folders; with `every` > 1, every n-th file only (quick runs)."""
    from graft.demos.images import build_digits_folder

    full = build_digits_folder(work / "digits")
    if every == 1:
        return full
    subset = work / f"digits-1in{every}"
    if not subset.is_dir():
        for split in ("train", "val"):
            for folder in sorted((full / split).iterdir()):
                (subset / split / folder.name).mkdir(parents=True)
                for png in sorted(folder.glob("*.png"))[::every]:
                    shutil.copy2(png, subset / split / folder.name / png.name)
    return subset


def settings(epochs: int, strategy: str = "full") -> dict:
    """The demo's settings (EfficientNet-Lite0, 64 px, batch 32, lr 2e-3) with an explicit strategy."""
    from graft.demos.images import DEMO_SETTINGS

    return {**DEMO_SETTINGS, "epochs": epochs, "strategy": strategy, "quiet": True}


def prepare_on(data: Path, epochs: int):
    """graft's `Prepared` for full fine-tuning on `data`: model, loaders, optimizer, schedule (seeded)."""
    from graft.config import resolve_config
    from graft.data.discover import discover_config
    from graft.training.prepare import prepare

    cfg = resolve_config(None, {"data": data, **settings(epochs)})
    return prepare(cfg, discover_config(cfg))


@dataclass
class Result:
    """One training run of one contender."""

    samples_per_s: list[float] = field(default_factory=list)  # per epoch, training steps only
    val_acc: list[float] = field(default_factory=list)  # per epoch
    epoch_end: list[float] = field(default_factory=list)  # seconds from the run's start to each epoch's end


def time_to(target: float, result: Result) -> float | None:
    return next((t for a, t in zip(result.val_acc, result.epoch_end) if a >= target), None)


def summary(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} x {platform.machine()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads, load average {load}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
