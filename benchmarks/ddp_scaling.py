"""Data-parallel scaling: the demo task trained with `graft train --devices N` for each N given.

    python benchmarks/ddp_scaling.py                      # 1 and every visible GPU
    python benchmarks/ddp_scaling.py --devices 1 2 4 8 --epochs 4

Each process keeps the demo's batch of 32 (the global batch grows with N, as with torchrun in practice),
full fine-tuning (no cached head-only epochs, which would hide the backbone's cost). Throughput is the
training samples per second of all ranks together, averaged over the epochs after the first (the first
includes CUDA start-up and cuDNN autotuning); evaluation is excluded. Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRAFT = str(Path(sys.executable).parent / "graft")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=None, help="default: 1 and all GPUs")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    args = parser.parse_args()
    import torch

    from graft.demos.images import build_digits_folder

    gpus = torch.cuda.device_count()
    devices = args.devices or sorted({1, max(gpus, 1)})
    where = f"{gpus} x {torch.cuda.get_device_name(0)}" if gpus else "CPU only (gloo; not a scaling figure)"
    print(f"torch {torch.__version__}, {where}")
    with tempfile.TemporaryDirectory() as work:
        data = build_digits_folder(Path(work) / "digits")
        rows = []
        for n in devices:
            out = Path(work) / f"run-{n}"
            command = [GRAFT, "train", str(data), "--model", "efficientnet_lite0", "--img-size", "64",
                       "--batch-size", str(args.batch_size), "--lr", "2e-3", "--epochs", str(args.epochs),
                       "--strategy", "full", "--out", str(out), "--log", "csv", "-q", "--devices", str(n)]  # fmt: skip
            started = time.perf_counter()
            subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            wall = time.perf_counter() - started
            with (out / "metrics.csv").open() as f:
                history = list(csv.DictReader(f))
            later = history[1:] or history
            speed = sum(float(r["samples_per_s"]) for r in later) / len(later)
            best = max(float(r["val_acc"]) for r in history)
            rows.append((n, n * args.batch_size, speed, wall, best))
    base = rows[0][2] / rows[0][0]  # per-device throughput of the smallest run
    print("\n| devices | global batch | train samples/s | scaling efficiency | whole run | best val acc |")
    print("|---|---|---|---|---|---|")
    for n, batch, speed, wall, best in rows:
        print(f"| {n} | {batch} | {speed:.0f} | {speed / (base * n):.0%} | {wall:.0f} s | {best:.2%} |")


if __name__ == "__main__":
    main()
