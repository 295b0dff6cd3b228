"""metrics.csv: the CSV sink and the rewrite to a checkpoint's history on resume."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from graft.files import write_atomic
from graft.monitoring.sink import Sink


class CSVSink(Sink):
    """metrics.csv: one row per epoch record, flushed at once so a crash loses nothing logged."""

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        self._file = None
        self._writer: csv.DictWriter | None = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if "epoch" not in metrics:
            return
        if self._writer is None:
            self._file = self.path.open("a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=list(metrics), extrasaction="ignore")
            if self.path.stat().st_size == 0:
                self._writer.writeheader()
        self._writer.writerow({k: _fmt(v) for k, v in metrics.items()})
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def rewrite_csv(path: Path, history: list[dict[str, float]]) -> None:
    """metrics.csv exactly as `history` says (atomically): the rows of a checkpoint's epochs, no others."""
    if not path.exists() and not history:
        return

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            if history:
                writer = csv.DictWriter(f, fieldnames=list(history[0]), extrasaction="ignore")
                writer.writeheader()
                writer.writerows({k: _fmt(v) for k, v in row.items()} for row in history)

    write_atomic(path, write)


def _fmt(value: float) -> str | float:
    # 6 significant digits for metrics; large numbers (wall_time: seconds since the epoch) to the millisecond.
    if not isinstance(value, float):
        return value
    return f"{value:.3f}" if abs(value) >= 1e6 else f"{value:.6g}"
