"""Kill sweep: a gradual run killed by SIGKILL at random moments, then continued, must end as the run that
never died.

    python benchmarks/kill_sweep.py               # 20 kills (seeded), ~10 minutes on 2 cores
    python benchmarks/kill_sweep.py --kills 3     # a quick look

One uninterrupted reference run first (real `graft train` process, CPU, deterministic, a DataLoader
worker, gradual unfreezing, a checkpoint every 2 steps). Then, for each kill, the same command is started
and SIGKILLed after a delay drawn uniformly from (0, reference wall time): during the imports, the data
check, the probe, training, a checkpoint write or the bundle. What follows is what a user would do:
`graft resume RUN` when the run wrote a checkpoint, else the same `graft train ... --out RUN` again (a folder
whose run never checkpointed is started over, and an absent one is simply created). The result counts if
the final checkpoint's weights are bitwise equal to the reference's and metrics.csv has the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GRAFT = str(Path(sys.executable).parent / "graft")
RUN = ["--model", "test_resnet", "--no-pretrained", "--img-size", "32", "--epochs", "3", "--batch-size", "8",
       "--lr", "0.01", "--num-workers", "1", "--save-every", "2", "--strategy", "gradual", "--unfreeze-at", "1",
       "--set", "train.deterministic=true", "--set", "optim.warmup_epochs=0", "-q"]  # fmt: skip


def graft(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([GRAFT, *map(str, args)], capture_output=True, text=True, timeout=600)


def same_run(run: Path, reference: Path) -> str | None:
    """None when `run` ended where `reference` did, else what differs."""
    import torch
    from safetensors.torch import load_file

    def last(folder: Path) -> dict:
        index = json.loads((folder / "checkpoints" / "index.json").read_text())
        return load_file(str(folder / "checkpoints" / index["last"] / "model.safetensors"))

    mine, theirs = last(run), last(reference)
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k], theirs[k]) for k in theirs):
        return "weights differ"
    rows = lambda path: [line.split(",")[:5] for line in path.read_text().splitlines()]  # noqa: E731
    if rows(run / "metrics.csv") != rows(reference / "metrics.csv"):
        return "metrics.csv differs"
    if not (run / "model" / "graft.json").is_file():
        return "no bundle"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=float, nargs=2, default=(0.0, 1.0), metavar=("FROM", "TO"),
                        help="draw kill times from this fraction of the reference run (default 0 1: its whole life; "
                        "0.7 1: mostly training, past the imports and the probe)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_color_images

    work = Path(tempfile.mkdtemp(prefix="graft-kill-sweep-"))
    data = make_color_images(work / "colors")
    started = time.perf_counter()
    result = graft("train", data, *RUN, "--out", work / "reference")
    reference_s = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    rng = random.Random(args.seed)
    print(
        f"# kill sweep {time.strftime('%Y-%m-%d')}: {args.kills} SIGKILLs over a {reference_s:.1f} s gradual run"
    )
    print(f"{'#':>3} {'kill at s':>9} {'checkpoints':>11} {'then':<22} {'result':<10}")
    rows = []
    for i in range(args.kills):
        out = work / f"run-{i:02d}"
        delay = rng.uniform(args.window[0] * reference_s, args.window[1] * reference_s)
        process = subprocess.Popen([GRAFT, "train", str(data), *RUN, "--out", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        finished = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        saved = sorted(p.name for p in (out / "checkpoints").glob("step-*")) if out.is_dir() else []
        if finished:
            then, after = "(had finished)", None
        elif saved:
            then, after = "graft resume", graft("resume", out, "-q")
        else:
            then, after = "graft train --out same", graft("train", data, *RUN, "--out", out)
        problem = (
            (after.stderr.strip().splitlines() or ["exit code"])[-1] if after and after.returncode else None
        )
        problem = problem or same_run(out, work / "reference")
        rows.append(
            {"kill_at_s": round(delay, 2), "checkpoints": len(saved), "then": then, "problem": problem}
        )
        print(f"{i + 1:>3} {delay:>9.2f} {len(saved):>11} {then:<22} {problem or 'equal':<10}", flush=True)
    equal = sum(r["problem"] is None for r in rows)
    print(f"equal to the uninterrupted run: {equal}/{len(rows)}; before any checkpoint: "
          f"{sum(r['checkpoints'] == 0 for r in rows)}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"reference_s": reference_s, "kills": rows}, indent=1))


if __name__ == "__main__":
    main()
