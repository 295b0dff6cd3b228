"""Time-to-accuracy of graft's strategies on the demo task, and the feature cache's epoch cost.

    python benchmarks/strategies.py                  # digits (the demo task): full vs auto vs the others
    python benchmarks/strategies.py --task photos    # natural photos, where ImageNet features already fit
    python benchmarks/strategies.py --quick          # a smoke run: 2 epochs, 1 strategy pair

It ends with the feature cache (a frozen-backbone epoch from the cache vs through the images) and the cuts
(gradual with augmentation off, each stage starting from its cached cut vs running the frozen prefix).

Every run uses the same data split, model (ImageNet EfficientNet-Lite0 from its PyPI package), input size,
batch size, seed and thread settings, back to back in one process. Time-to-accuracy is the wall time from
calling graft.train to the end of the first epoch whose validation accuracy reaches the target, so setup
(the advisor's measurement, feature caching) is charged to the strategy that needs it. Ratios are against
full fine-tuning.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # make_photo_crops


def run(
    data: Path, out: Path, strategy: str, epochs: int, extra: dict
) -> tuple[list[float], list[float], float]:
    import graft
    from graft.demos.images import DEMO_SETTINGS

    started = time.time()
    result = graft.train(
        data, out=out, quiet=True, **{**DEMO_SETTINGS, "epochs": epochs, "strategy": strategy, **extra}
    )
    accuracies = [h["val_acc"] for h in result.history]
    elapsed = [h["wall_time"] - started for h in result.history]
    return accuracies, elapsed, time.time() - started


def time_to(target: float, accuracies: list[float], elapsed: list[float]) -> float | None:
    return next((t for a, t in zip(accuracies, elapsed) if a >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["digits", "photos"], default="digits")
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--seeds", type=int, default=1, help="repeat every strategy with training seeds 0..N-1 (medians)"
    )
    parser.add_argument("--strategies", default="full,auto,gradual,discriminative,linear-probe")
    parser.add_argument("--no-cache-check", action="store_true", help="skip the cache and cut timings")
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs, full vs auto only: checks that it runs"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="graft-bench-"))
    os.environ["GRAFT_CACHE_DIR"] = str(work / "cache")  # a cold cache: the first auto run pays for features
    if args.task == "digits":
        from graft.demos.images import build_digits_folder

        data = build_digits_folder(work / "digits")
    else:
        from conftest import make_photo_crops

        data = make_photo_crops(work / "photos", per_class=60, size=128)
    strategies = ["full", "auto"] if args.quick else args.strategies.split(",")
    epochs = 2 if args.quick else args.epochs
    print(
        f"# {args.task}, target val_acc {args.target:.0%}, {epochs} epochs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )
    results: dict[str, list] = {}
    for seed in range(args.seeds):  # the strategies interleaved, so a slow spell hits them alike
        for strategy in strategies:
            extra = {"strategy.cache_features": "on", "lr": 1e-2} if strategy == "linear-probe" else {}
            extra["train.seed"] = seed
            acc, elapsed, total = run(data, work / f"{strategy}-{seed}", strategy, epochs, extra)
            results.setdefault(strategy, []).append(
                (time_to(args.target, acc, elapsed), max(acc), total, acc)
            )
    base = (
        statistics.median(t for t, *_ in results["full"] if t is not None)
        if any(t is not None for t, *_ in results["full"])
        else None
    )
    print(
        f"{'strategy':<15} {'time to target':>15} {'x full':>7} {'best acc':>9} {'run total':>10}  "
        "accuracy per epoch (last seed); time to target per seed"
    )
    for strategy, rows in results.items():
        times = [t for t, *_ in rows if t is not None]
        median = statistics.median(times) if times else None
        ratio = f"{base / median:.2f}x" if median and base else "-"
        shown = f"{median:.1f}s" if median else "never"
        best = statistics.median(b for _, b, _, _ in rows)
        total = statistics.median(t for _, _, t, _ in rows)
        print(
            f"{strategy:<15} {shown:>15} {ratio:>7} {best:>9.2%} {total:>9.1f}s  "
            + " ".join(f"{a:.3f}" for a in rows[-1][3])
            + "; "
            + " ".join(f"{t:.1f}s" if t else "never" for t, *_ in rows)
        )
    if not args.no_cache_check:
        cache_ratio(data, work)
        cut_ratio(data, work, epochs)


def cache_ratio(data: Path, work: Path) -> None:
    """One frozen-backbone (linear-probe) epoch from the feature cache vs the same epoch through the backbone."""
    import graft
    from graft.demos.images import DEMO_SETTINGS

    probe = {
        **DEMO_SETTINGS,
        "epochs": 2,
        "strategy": "linear-probe",
        "data.augment": {"enabled": False},
        "quiet": True,
    }
    through = graft.train(data, out=work / "probe-images", **{**probe, "cache_features": "off"})
    cached = graft.train(data, out=work / "probe-cached", **{**probe, "cache_features": "on"})
    image_epoch = statistics.median(h["epoch_time"] for h in through.history)
    cached_epoch = statistics.median(h["epoch_time"] for h in cached.history)
    print(
        f"feature cache: frozen-backbone epoch {image_epoch:.2f}s through the images, {cached_epoch:.3f}s from "
        f"the cache = {cached_epoch / image_epoch:.1%} of the epoch ({image_epoch / cached_epoch:.0f}x faster)"
    )


def cut_ratio(data: Path, work: Path, epochs: int) -> None:
    """Gradual unfreezing with augmentation off, each stage starting from its cached cut vs running the
    frozen prefix every epoch (cache_max_gb 0 leaves only the head's cache): epoch times per stage."""
    import graft
    from graft.demos.images import DEMO_SETTINGS

    runs = {}
    for name, budget in (("through the prefix", 0.0), ("from the cuts", 4.0)):
        settings = {**DEMO_SETTINGS, "epochs": epochs, "strategy": "gradual", "quiet": True}
        settings |= {"data.augment": {"enabled": False}, "strategy.cache_max_gb": budget}
        runs[name] = graft.train(data, out=work / f"cuts-{budget}", **settings).history
    print("gradual, augmentation off: epoch time per stage (training + validation)")
    for name, history in runs.items():
        print(f"  {name:<20} " + " ".join(f"{h['epoch_time']:6.2f}s" for h in history)
              + "   val acc " + " ".join(f"{h['val_acc']:.3f}" for h in history))  # fmt: skip
    slow, fast = runs["through the prefix"], runs["from the cuts"]
    print(
        "  ratio                "
        + " ".join(f"{a['epoch_time'] / b['epoch_time']:6.2f}x" for a, b in zip(slow, fast))
    )


if __name__ == "__main__":
    main()
