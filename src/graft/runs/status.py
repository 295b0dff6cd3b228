"""Which runs are running, finished, stopped or crashed, and which can be resumed.

A training process writes `runs/NAME/status.json` when it starts ("running", with its pid and host) and
when it ends ("finished", "stopped" or "failed"). A process killed by SIGKILL, the OOM killer or a power
cut cannot write its end, so "running" with a pid that no longer exists on this host reads as crashed.
Runs from before status.json are judged by their files. Nothing here imports torch: `graft runs` reads
only JSON, YAML and CSV, and answers in about a second.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from graft.errors import GraftError
from graft.files import write_atomic
from graft.runs.best import ranking, resolve_mode
from graft.runs.folder import RunFolder
from graft.runs.records import read_config, read_metrics
from graft.runs.store import INDEX, STATE, CheckpointStore

ENDED = ("finished", "stopped", "failed")


@dataclass
class RunInfo:
    name: str
    path: Path
    status: str  # running, finished, stopped, crashed
    resumable: bool  # not running, not finished, and an intact checkpoint to continue from
    epochs_done: int
    epochs_total: int | None
    monitor: str
    best: float | None  # best value of `monitor` in metrics.csv, and its epoch
    best_epoch: int | None
    updated: datetime | None  # the newest write to the run's status, metrics, index or config
    note: str | None = None  # why it ended (early stopping, the error), or a pid we could not check

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "updated": _iso(self.updated)}


def mark_running(run_dir: Path, epochs: int) -> None:
    """Record that this process is training `run_dir` (a new run or a resumed one)."""
    now = _iso(datetime.now())
    _write(
        run_dir,
        {
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now,
            "updated": now,
            "epochs": epochs,
        },
    )


def mark_ended(run_dir: Path, state: str, detail: str | None = None) -> None:
    """Record how the run ended: "finished" (all epochs, or early stopping: say so in `detail`), "stopped"
    (a signal: resumable) or "failed" (an exception; `detail` is its one-line message)."""
    assert state in ENDED, f"unknown end state {state!r}; expected one of {ENDED}"
    now = _iso(datetime.now())
    _write(run_dir, {**read_status(run_dir), "state": state, "detail": detail, "updated": now, "ended": now})


def error_line(err: BaseException) -> str:
    """`err` as one line for status.json's detail: the message's last line (a DataLoader worker's error
    arrives as its whole traceback), named by type unless it is a user error."""
    lines = str(err).strip().splitlines()
    message = lines[-1].removeprefix("graft.errors.GraftError: ") if lines else ""
    if isinstance(err, GraftError) and message:
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def read_runs(root: Path) -> list[RunInfo]:
    """Every run in `root` (its sub-folders holding a config.yaml, or `root` itself), newest first."""
    root = Path(root)
    folders = [root] if RunFolder(root).config.is_file() else []
    folders += sorted(p for p in root.iterdir() if p.is_dir() and RunFolder(p).config.is_file())
    runs = [read_run(folder) for folder in folders]
    return sorted(runs, key=lambda r: r.updated.timestamp() if r.updated else 0.0, reverse=True)


def read_run(run_dir: Path) -> RunInfo:
    cfg = read_config(run_dir)  # plain YAML, not the validated Config: older runs must still list
    checkpoint = cfg.get("checkpoint") or {}
    monitor = checkpoint.get("monitor") or "val_acc"
    mode = resolve_mode(monitor, checkpoint.get("mode") or "auto")
    rows = read_metrics(run_dir) or _checkpoint_history(run_dir)
    best, best_epoch = _best(rows, monitor, mode)
    status_file = read_status(run_dir)
    epochs_total = status_file.get("epochs") or (cfg.get("train") or {}).get("epochs")
    status, note = _judge(run_dir, status_file, len(rows), epochs_total)
    return RunInfo(
        name=run_dir.name,
        path=run_dir,
        status=status,
        resumable=status not in ("running", "finished") and _has_intact_checkpoint(run_dir),
        epochs_done=len(rows),
        epochs_total=epochs_total,
        monitor=monitor,
        best=best,
        best_epoch=best_epoch,
        updated=_last_write(run_dir),
        note=note,
    )


def _judge(run_dir: Path, status: dict, epochs_done: int, epochs_total: int | None) -> tuple[str, str | None]:
    state, detail = status.get("state"), status.get("detail")
    if state == "running":
        if status.get("host") not in (None, socket.gethostname()):
            return "running", f"on {status['host']} (its pid cannot be checked from here)"
        if _alive(status.get("pid")):
            return "running", None
        return "crashed", "process gone, no end recorded"
    if state == "failed":
        return "crashed", detail
    if state in ("stopped", "finished"):
        return state, detail
    # No (readable) status.json: a run from before it existed.
    complete = epochs_total is not None and epochs_done >= epochs_total
    return ("finished", None) if complete and RunFolder(run_dir).bundle.is_dir() else ("crashed", None)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only "does it exist"
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _has_intact_checkpoint(run_dir: Path) -> bool:
    """What `graft resume` would find: index.json's last checkpoint, or failing that any older one, that
    verifies. Verifying hashes the files; usually the first one checked is intact."""
    store = CheckpointStore(RunFolder(run_dir).checkpoints)
    last = store.read_index().last
    candidates = ([last] if last else []) + [n for n in store.names() if n != last]
    return any((store.root / n).is_dir() and store.verify(n) is None for n in candidates)


def _best(rows: list[dict[str, str]], monitor: str, mode: str) -> tuple[float | None, int | None]:
    """The best epoch by `monitor`, as training judged it: NaN never wins, ties go to the lower val_loss."""
    best: tuple[tuple[float, float], float, int] | None = None  # (ranking, value, epoch)
    for row in rows:
        value, loss = _float(row.get(monitor)), _float(row.get("val_loss"))
        if value is None or math.isnan(value):
            continue
        rank = ranking(value, loss, monitor, mode)
        if best is None or rank > best[0]:
            best = (rank, value, int(_float(row.get("epoch")) or 0))
    return (best[1], best[2]) if best else (None, None)


def _checkpoint_history(run_dir: Path) -> list[dict[str, Any]]:
    """Without metrics.csv (`--log none`), the epoch records of the newest checkpoint's state.json."""
    store = CheckpointStore(RunFolder(run_dir).checkpoints)
    last = store.read_index().last
    try:
        state = json.loads((store.root / last / STATE).read_text()) if last else {}
        return [{k: str(v) for k, v in row.items()} for row in state["progress"]["history"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        status = json.loads(RunFolder(run_dir).status.read_text())
    except (OSError, ValueError):  # absent, or torn by a power cut: judged by the run's files instead
        return {}
    return status if isinstance(status, dict) else {}


def _last_write(run_dir: Path) -> datetime | None:
    folder, times = RunFolder(run_dir), []
    for path in (folder.status, folder.metrics, folder.checkpoints / INDEX, folder.config):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(times)).astimezone() if times else None


def _write(run_dir: Path, status: dict[str, Any]) -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run (and has its pid)
        return
    text = json.dumps(status, indent=1)
    try:
        write_atomic(RunFolder(run_dir).status, text)  # a reader (`graft runs`) never sees half
    except OSError:
        # A full disk has no room for the temporary copy; the few bytes in place usually fit. If not,
        # `graft runs` judges the run by its dead pid and its checkpoints, which is still right.
        try:
            RunFolder(run_dir).status.write_text(text)
        except OSError:
            pass


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone().isoformat(timespec="seconds") if moment else None
