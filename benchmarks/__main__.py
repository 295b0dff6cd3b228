"""graft vs a hand-written PyTorch loop vs PyTorch Lightning, side by side in one process.

    python -m benchmarks            # half the demo digits: 3 loops x 3 epochs x 3 repetitions (~9 min, 2 cores)
    python -m benchmarks --quick    # 1 in 20 images, 1 epoch, 1 repetition: checks that it runs
    make bench                      # this, then the single-topic scripts

The three loops train the same thing (full fine-tuning of the demo's ImageNet EfficientNet-Lite0 on the
digits, batch 32, 64 px, AdamW with graft's param groups and cosine schedule), built by the same
`graft.training.prepare.prepare`, with the same seed, threads and DataLoader. Repetitions are interleaved
and rotated (plain, graft, Lightning; graft, Lightning, plain; ...) so background load hits all three alike. Reported:
1. training throughput (samples/s over each epoch's training steps): best and median over all epochs of
   all repetitions, and the ratios graft / plain and Lightning / plain;
2. time to the target validation accuracy, counted from the call (model building included), for the
   three loops and for graft's default strategy (auto);
3. images/s of graft's training loader vs torchvision ImageFolder + default transforms on the same folder.
The output is Markdown tables; docs/benchmarks.md holds a measured copy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/__main__.py` works too

from benchmarks._common import Result, digits_folder, machine, summary, time_to  # noqa: E402
from benchmarks.loops import graft_run, lightning_available, lightning_run, plain_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="1 in 20 images, 1 epoch, 1 repetition")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of the three loops")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the cosine schedule's length)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads for all loops (default: torch's)"
    )
    parser.add_argument(
        "--every", type=int, default=2, help="every n-th image of the digits (2: 721 train / 181 val; 1: all)"
    )
    parser.add_argument(
        "--target",
        type=float,
        default=0.95,
        help="val accuracy for time-to-accuracy (3 epochs on half: ~96%%)",
    )
    args = parser.parse_args()
    reps, epochs, every = (1, 1, 20) if args.quick else (args.reps, args.epochs, args.every)
    # --quick runs on 1 thread unless told otherwise: it checks that the suite runs, and on a shared 2-core
    # machine 2 spin-waiting OpenMP threads make it several times slower.
    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="graft-suite-"))
    data = digits_folder(work, every)
    n_train = sum(1 for _ in (data / "train").rglob("*.png"))
    n_val = sum(1 for _ in (data / "val").rglob("*.png"))

    contenders = {"plain": plain_run, "graft": graft_run}
    if lightning_available():
        contenders["lightning"] = lightning_run
    else:
        print("lightning is not installed (pip install 'torchgraft[bench]'): its rows are skipped")
    print(f"# demo digits ({n_train} train / {n_val} val, 64 px), EfficientNet-Lite0 full fine-tuning, "
          f"batch 32, {epochs} epoch(s) x {reps} interleaved repetition(s)")  # fmt: skip
    print(f"# {machine()}")
    sys.stdout.flush()
    results: dict[str, list[Result]] = {name: [] for name in contenders}
    names = list(contenders)
    for rep in range(reps):
        # Rotated each repetition (plain first, then graft first, ...): a load that drifts during the
        # suite does not always favor whichever loop runs last.
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            results[name].append(contenders[name](data, epochs, work / f"{name}-{rep}"))
    auto = graft_run(data, epochs, work / "graft-auto", strategy="auto")

    print("\n" + "\n".join(throughput_table(results)))
    print("\n" + "\n".join(accuracy_table(results, auto, args.target)))
    sys.stdout.flush()

    from benchmarks.data_pipeline import report
    from graft.data.images import default_num_workers

    workers = [default_num_workers()] if args.quick else sorted({0, default_num_workers()})
    print("\n" + "\n".join(report(data, workers, passes=1 if args.quick else 3)))
    print(f"\n# finished {time.strftime('%H:%M')}, {machine()}")


def throughput_table(results: dict[str, list[Result]]) -> list[str]:
    rates = {name: [r for result in runs for r in result.samples_per_s] for name, runs in results.items()}
    best_plain, median_plain = max(rates["plain"]), statistics.median(rates["plain"])
    lines = [
        "| loop | samples/s best | samples/s median | worst | / plain (best) | / plain (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in rates.items():
        worst, median = summary(values)
        lines.append(
            f"| {name} | {max(values):.1f} | {median:.1f} | {worst:.1f} | "
            f"{max(values) / best_plain:.3f}x | **{median / median_plain:.3f}x** |"
        )
    ratios = ", ".join(
        f"{name} / plain {statistics.median(v) / median_plain:.3f}x"
        for name, v in rates.items()
        if name != "plain"
    )
    lines.append(f"\nthroughput ratios (median): {ratios}")
    # Paired: each repetition's ratio of medians, so drift in machine load between repetitions cancels.
    for name, runs in results.items():
        if name != "plain":
            paired = [statistics.median(r.samples_per_s) / statistics.median(b.samples_per_s)
                      for r, b in zip(runs, results["plain"])]  # fmt: skip
            shown = " ".join(f"{x:.3f}x" for x in paired)
            lines.append(f"{name} / plain per repetition: {shown} (median {statistics.median(paired):.3f}x)")
    return lines


def accuracy_table(results: dict[str, list[Result]], auto: Result, target: float) -> list[str]:
    rows = {f"{name} (full)": runs for name, runs in results.items()}
    rows["graft (auto, the default)"] = [auto]
    lines = [
        f"| loop | time to {target:.0%} (median) | best val acc | val acc @ s since the call, per epoch (last repetition) |",
        "|---|---|---|---|",
    ]
    for name, runs in rows.items():
        times = [t for t in (time_to(target, r) for r in runs) if t is not None]
        shown = f"{statistics.median(times):.1f} s" if len(times) == len(runs) else "not reached"
        best = statistics.median(max(r.val_acc) for r in runs)
        per_epoch = ", ".join(f"{a:.3f} @ {t:.0f}" for a, t in zip(runs[-1].val_acc, runs[-1].epoch_end))
        lines.append(f"| {name} | {shown} | {best:.2%} | {per_epoch} |")
    return lines


if __name__ == "__main__":
    main()
