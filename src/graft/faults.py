"""Crash-test hooks: `fault(point)` kills the process with SIGKILL at a named point, on request.

With GRAFT_FAULT=<point>@<n> in the environment, the process kills itself the n-th time it reaches
`point`: no cleanup, no flush, like a power cut or an OOM kill. The kill-and-resume tests use it to die at
exact places (the same technique as SQLite's crash tests): "step" after an optimizer step, "validation"
during validation, "checkpoint-write" halfway through writing a checkpoint, "checkpoint-committed" after
one, "unfreeze" right after a gradual unfreeze. Without the variable a call costs one string test.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_FAULT = os.environ.get("GRAFT_FAULT", "")
_reached: Counter[str] = Counter()


def fault(point: str) -> None:
    if not _FAULT:
        return
    name, _, count = _FAULT.partition("@")
    if name == point:
        _reached[point] += 1
        if _reached[point] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
