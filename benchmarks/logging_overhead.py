"""What monitoring costs: training throughput with graft's default logging vs logging off, same run.

    python benchmarks/logging_overhead.py            # demo task, full fine-tuning, 2 epochs, 2 pairs
    python benchmarks/logging_overhead.py --quick    # 1 epoch, 1 pair: checks that it runs

Default logging = TensorBoard + CSV: train loss, per-group LRs and throughput every 10 steps, weight and
gradient histograms per layer group every 50 steps, the worst-misclassified validation images every
epoch, augmented samples, the graph, config text and hparams once. Off = no sinks, no histograms, no
images, no graph. Runs alternate (off, on, off, on, ...) in one process so drift in machine speed hits
both sides; the ratio is of median training throughput (samples/s over each epoch's training steps) and
of median whole-epoch time (training + validation + its images).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OFF = {"log": "none", "log.histogram_every_n_steps": 0, "log.images": 0, "log.graph": False}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    import graft
    from graft.demos.images import DEMO_SETTINGS, build_digits_folder

    work = Path(tempfile.mkdtemp(prefix="graft-logging-"))
    data = build_digits_folder(work / "digits")
    epochs, pairs = (1, 1) if args.quick else (2, args.pairs)
    base = {**DEMO_SETTINGS, "epochs": epochs, "strategy": "full", "quiet": True}
    print(f"# logging overhead, demo task, full fine-tuning, {epochs} epoch(s) x {pairs} pair(s), "
          f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
    throughput: dict[str, list[float]] = {"off": [], "default": []}
    epoch_time: dict[str, list[float]] = {"off": [], "default": []}
    whole: dict[str, list[float]] = {"off": [], "default": []}
    for i in range(pairs):
        for label, extra in (("off", OFF), ("default", {})):
            started = time.perf_counter()
            run = graft.train(data, out=work / f"{label}-{i}", **base, **extra)
            whole[label].append(time.perf_counter() - started)
            throughput[label] += [h["samples_per_s"] for h in run.history]
            epoch_time[label] += [h["epoch_time"] for h in run.history]
    print(f"{'logging':<10} {'samples/s (median)':>20} {'epoch s (median)':>18} {'run s (median)':>16}")
    for label in ("off", "default"):
        print(f"{label:<10} {statistics.median(throughput[label]):>20.1f} "
              f"{statistics.median(epoch_time[label]):>18.2f} {statistics.median(whole[label]):>16.1f}")  # fmt: skip
    ratio = statistics.median(throughput["default"]) / statistics.median(throughput["off"])
    epoch_ratio = statistics.median(epoch_time["off"]) / statistics.median(epoch_time["default"])
    print(f"default/off throughput ratio {ratio:.3f}x; epoch-time ratio (off/default) {epoch_ratio:.3f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
