"""`graft train --devices N`: the same command under torchrun, N processes on this machine.

Torch-free on purpose: the launching process only starts torchrun and waits for it.
"""

from __future__ import annotations

import subprocess
import sys


def launch(devices: int, argv: list[str]) -> int:
    """`graft train --devices N ...` on one machine: re-run the same command under torchrun with N
    processes (the flag removed) and return its exit code."""
    # `--`: torchrun's own parser would otherwise claim graft flags that abbreviate its options
    # (--log for --log-dir, --monitor for --monitor-interval, -m for --module).
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
               "-m", "graft", "--", *without_devices(argv)]  # fmt: skip
    process = subprocess.Popen(command)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # the workers got the Ctrl-C too: they checkpoint and exit; wait for them
            continue


def without_devices(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            out.append(arg)
    return out
