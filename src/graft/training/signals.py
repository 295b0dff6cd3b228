"""Stopping on request: the first SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption notice) only sets
a flag; the loop finishes the optimizer step in flight, writes a checkpoint and returns, and graft exits 0
with the resume command. A second SIGINT interrupts at once, for a user who really means it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class GracefulStop:
    """Context manager: while active, SIGINT/SIGTERM request a stop instead of killing the process."""

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one arrived
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.requested = signal.Signals(signum).name
