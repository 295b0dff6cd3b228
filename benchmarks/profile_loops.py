"""Where graft's loop spends time that the hand-written loop does not: torch.profiler on both, diffed.

    python benchmarks/profile_loops.py               # 1 in 5 demo images, 2 epochs, 1 thread
    python benchmarks/profile_loops.py --every 1     # all of them

Both runs are whole runs (model building, training, validation, checkpoints; graft also its logging,
bundle and report). The table lists the operators whose self CPU time differs most between graft and the
plain loop, with call counts, so a per-step cost (a sync, a copy, a histogram) stands out from the
once-per-run ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import digits_folder  # noqa: E402
from benchmarks.loops import graft_run, plain_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=5, help="use every n-th image of the demo digits")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="graft-profile-"))
    data = digits_folder(work, args.every)
    ops: dict[str, dict[str, tuple[int, float]]] = {}
    for name, run in (("plain", plain_run), ("graft", graft_run)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            result = run(data, args.epochs, work / name)
        ops[name] = {e.key: (e.count, e.self_cpu_time_total / 1e6) for e in prof.key_averages()}
        total = sum(t for _, t in ops[name].values())
        rates = " ".join(f"{r:.1f}" for r in result.samples_per_s)
        print(f"{name}: {total:.2f} s self CPU in operators; training samples/s per epoch {rates}")
    keys = set(ops["plain"]) | set(ops["graft"])
    diff = sorted(
        keys, key=lambda k: ops["graft"].get(k, (0, 0.0))[1] - ops["plain"].get(k, (0, 0.0))[1], reverse=True
    )
    print(
        f"\n{'operator':<42} {'plain calls':>11} {'plain s':>8} {'graft calls':>11} {'graft s':>8} {'extra s':>8}"
    )
    for key in diff[: args.top]:
        (pc, pt), (gc, gt) = ops["plain"].get(key, (0, 0.0)), ops["graft"].get(key, (0, 0.0))
        print(f"{key[:42]:<42} {pc:>11} {pt:>8.3f} {gc:>11} {gt:>8.3f} {gt - pt:>+8.3f}")


if __name__ == "__main__":
    main()
