"""`graft train --devices N` listens on the loopback interface only (training/torchrun_local.py): every
socket a real 2-process torchrun run opens for listening is on 127.0.0.1, none on all interfaces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_color_images

GRAFT = str(Path(sys.executable).parent / "graft")
LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1 as /proc/net/tcp{,6} write them


def listening() -> set[tuple[str, str]]:
    """(address, port) of every TCP socket in LISTEN state on this machine (state 0A)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                found.add(tuple(fields[1].split(":")))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads Linux's /proc/net/tcp")
def test_a_two_process_run_listens_on_the_loopback_only(tmp_path):
    data = make_color_images(tmp_path / "colors")
    before = listening()
    command = [GRAFT, "train", data, "--model", "test_resnet", "--no-pretrained", "--img-size", "32", "--epochs",
               "3", "--batch-size", "4", "--num-workers", "0", "--devices", "2", "--out", tmp_path / "run", "-q"]  # fmt: skip
    process = subprocess.Popen(
        list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    opened: set[tuple[str, str]] = set()
    while process.poll() is None:
        opened |= listening() - before
        time.sleep(0.05)
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert opened, "no listening socket was seen: the check looked at nothing"
    assert {address for address, _ in opened} <= LOOPBACK, opened
