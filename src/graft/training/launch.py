"""`graft train --devices N`: the same command under torchrun, N processes on this machine.

Torch-free on purpose: the launching process only starts torchrun and waits for it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid


def launch(devices: int, argv: list[str]) -> int:
    """`graft train --devices N ...` on one machine: re-run the same command under torchrun with N
    processes (the flag removed) and return its exit code."""
    # `--`: torchrun's own parser would otherwise claim graft flags that abbreviate its options
    # (--log for --log-dir, --monitor for --monitor-interval, -m for --module).
    # One node, every listening socket on 127.0.0.1 (training/torchrun_local.py): what --standalone means,
    # without listening on the network.
    command = [sys.executable, "-m", "graft.training.torchrun_local", "--nnodes=1", "--rdzv-backend=c10d",
               "--rdzv-endpoint=127.0.0.1:0", f"--rdzv-id={uuid.uuid4().hex}", "--local-addr=127.0.0.1",
               f"--nproc-per-node={devices}", "-m", "graft", "--", *without_devices(argv)]  # fmt: skip
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
