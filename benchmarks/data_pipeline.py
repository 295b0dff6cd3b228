"""Images/s of graft's training loader vs torchvision's ImageFolder + default transforms, same folder.

    python benchmarks/data_pipeline.py    # where a graft sample's time goes, piece by piece (1 thread)

Both decode the same PNG files to RGB, crop-resize to the model's input size, flip, convert and normalize,
in batches of the run's size with the run's number of workers (persistent), shuffled. Passes alternate
(graft, torchvision, graft, ...) after one warm-up pass each that starts the workers.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from torch.utils.data import DataLoader


def loaders(data: Path, num_workers: int) -> dict[str, DataLoader]:
    from torchvision import datasets, transforms

    from benchmarks._common import settings
    from graft.config import resolve_config
    from graft.data.discover import discover_config
    from graft.data.images import ImageDataset, create_loader, create_transforms
    from graft.models.registry import create_model

    cfg = resolve_config(None, {"data": data, **settings(1)})
    spec = discover_config(cfg)
    m = cfg.model
    built = create_model(m.name, len(spec.classes), m.pretrained, m.weights, m.drop_rate, cfg.data.img_size)
    dc = built.data_config
    train_tf, _ = create_transforms(dc, cfg.data.augment)
    batch, seed = cfg.train.batch_size, cfg.train.seed
    graft_loader = create_loader(ImageDataset(spec.train, train_tf, seed), batch, True, num_workers, seed)
    # torchvision's classification recipe: RandomResizedCrop + flip + tensor + normalize.
    tv_tf = transforms.Compose([
        transforms.RandomResizedCrop(dc["input_size"][-1]),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(dc["mean"], dc["std"]),
    ])  # fmt: skip
    tv_loader = DataLoader(datasets.ImageFolder(data / "train", tv_tf), batch_size=batch, shuffle=True,
                           num_workers=num_workers, persistent_workers=num_workers > 0)  # fmt: skip
    return {"graft": graft_loader, "torchvision": tv_loader}


def images_per_s(loader: DataLoader, epoch: int) -> float:
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    started, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    return seen / (time.perf_counter() - started)


def compare(data: Path, num_workers: int, passes: int) -> dict[str, list[float]]:
    """images/s per timed pass, per loader."""
    found = loaders(data, num_workers)
    for loader in found.values():
        images_per_s(loader, 0)  # warm-up: workers start, files enter the page cache
    rates: dict[str, list[float]] = {name: [] for name in found}
    for i in range(passes):
        for name, loader in found.items():
            rates[name].append(images_per_s(loader, i + 1))
    return rates


def report(data: Path, num_workers_options: list[int], passes: int) -> list[str]:
    lines = [
        "| loader | workers | images/s (median) | images/s (best) | graft / torchvision |",
        "|---|---|---|---|---|",
    ]
    for workers in num_workers_options:
        rates = compare(data, workers, passes)
        ratio = statistics.median(rates["graft"]) / statistics.median(rates["torchvision"])
        for name, values in rates.items():
            shown = f"**{ratio:.2f}x**" if name == "graft" else ""
            lines.append(
                f"| {name} | {workers} | {statistics.median(values):.0f} | {max(values):.0f} | {shown} |"
            )
    return lines


def breakdown(data: Path, n: int = 200, repeats: int = 5) -> list[str]:
    """Microseconds per image of each piece of a training sample, in one process (best of `repeats`)."""
    from PIL import Image

    from graft.data.images import load_image
    from graft.data.sampler import seeded

    found = loaders(data, 0)
    graft_set, tv_set = found["graft"].dataset, found["torchvision"].dataset
    paths = [s.path for s in graft_set.samples[:n]]
    image = load_image(paths[0])

    def seeded_only(i: int) -> None:
        with seeded(graft_set.seed, 0, i):
            pass

    pieces = {
        "graft sample (decode + seeded transform)": lambda i: graft_set[(0, i)],
        "torchvision ImageFolder sample": lambda i: tv_set[i],
        "graft decode (load_image: EXIF, modes)": lambda i: load_image(paths[i]),
        "PIL open + convert('RGB')": lambda i: Image.open(paths[i]).convert("RGB"),
        "graft sample without seeded()": lambda i: graft_set.transform(load_image(paths[i])),
        "graft transform (timm), one image": lambda i: graft_set.transform(image),
        "torchvision transform, one image": lambda i: tv_set.transform(image),
        "seeded(seed, epoch, index) enter + exit": seeded_only,
    }
    best = {name: float("inf") for name in pieces}
    for _ in range(repeats):  # interleaved, so load drift hits every piece alike
        for name, piece in pieces.items():
            started = time.perf_counter()
            for i in range(len(paths)):
                piece(i)
            best[name] = min(best[name], (time.perf_counter() - started) / len(paths) * 1e6)
    return [f"{name:<42} {us:>7.0f} us/image" for name, us in best.items()]


if __name__ == "__main__":
    import sys
    import tempfile

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks._common import digits_folder

    torch.set_num_threads(1)
    print("\n".join(breakdown(digits_folder(Path(tempfile.mkdtemp(prefix="graft-loader-"))))))
