"""One writer per run folder. `graft train` and `graft resume` hold an exclusive lock on runs/NAME/.lock for
the run's whole life; a second writer is refused in one line naming the holder.

The lock is an OS file lock (the `filelock` library: flock on POSIX), so the kernel releases it when the
holder dies, SIGKILL included: a stale lock never blocks a resume. The lock file stays empty (filelock owns
its contents); the holder's pid and host are in status.json once it trains (runs/status.py).
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from graft.errors import GraftError
from graft.runs.folder import RunFolder
from graft.runs.status import read_status


class RunLock:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = RunFolder(self.run_dir).lock
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> RunLock:
        """Take the lock now or raise; the run folder must exist."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise GraftError(
                f"{self.run_dir} is in use by another graft process ({self.holder() or 'still preparing its run'}); wait for it to "
                "end, or stop it first (Ctrl-C or kill -TERM PID: it checkpoints, then `graft resume` continues)"
            ) from None
        except OSError as err:
            raise GraftError(
                f"cannot lock {self.path}: {err.strerror}; is the run folder writable?"
            ) from None
        except NotImplementedError:  # a file system without flock (some NFS or Lustre mounts)
            raise GraftError(
                f"cannot lock {self.path}: its file system has no file locks; put runs on a local disk"
            ) from None
        return self

    def holder(self) -> str | None:
        """'pid N on HOST' from status.json while the holder trains; None while it is still preparing."""
        status = read_status(self.run_dir)
        if status.get("state") != "running" or "pid" not in status:
            return None
        return f"pid {status['pid']} on {status.get('host', '?')}"

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
