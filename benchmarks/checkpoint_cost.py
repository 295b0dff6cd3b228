"""What checkpointing costs on the demo task: seconds per checkpoint and the share of epoch time.

    python benchmarks/checkpoint_cost.py            # 2 epochs of the demo, full fine-tuning
    python benchmarks/checkpoint_cost.py --quick    # 1 epoch: checks that it runs

Two runs back to back in one process, same data, model and settings: checkpoints at epoch ends only (the
default), and also every 10 optimizer steps (4-5 per epoch here). Each checkpoint is the model as
safetensors, the optimizer/scaler/RNG state, the progress JSON and a manifest, every file fsync'ed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import graft
    from graft.demos.images import DEMO_SETTINGS, build_digits_folder

    work = Path(tempfile.mkdtemp(prefix="graft-ckpt-"))
    data = build_digits_folder(work / "digits")
    epochs = 1 if args.quick else 2
    base = {**DEMO_SETTINGS, "epochs": epochs, "strategy": "full", "quiet": True}
    print(f"# checkpoint cost, demo task, full fine-tuning, {epochs} epoch(s), {time.strftime('%Y-%m-%d')}")
    print(f"{'checkpoints':<28} {'written':>8} {'s each':>8} {'s/epoch':>8} {'epoch s':>8} {'share':>7}")
    runs = (("at epoch ends", "epoch-ends", {}), ("+ every 10 steps", "every-10-steps", {"save_every": 10}))
    for label, folder, extra in runs:
        run = graft.train(data, out=work / folder, **base, **extra)
        epoch_seconds = sum(h["epoch_time"] for h in run.history)
        share = run.checkpoint_seconds / epoch_seconds
        print(f"{label:<28} {run.checkpoints_written:>8} {run.checkpoint_seconds / run.checkpoints_written:>8.3f} "
              f"{run.checkpoint_seconds / epochs:>8.3f} {epoch_seconds / epochs:>8.1f} {share:>7.2%}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
