"""Files and folders that are replaced whole: a reader sees the old one or the new one, never half of either.

`write_atomic` is the one way graft writes a file that something else may read at the same time (status.json,
metrics.csv, advice.json, checkpoint manifests, the token and feature caches): a hidden temporary sibling named
per process (so concurrent writers never share one), then one rename; with `durable`, fsyncs around it.

The bundle (runs/NAME/model) and the evaluation report (runs/NAME/report) are written into a hidden
sibling, then swapped in by two renames; a crash between them leaves the new folder under its temporary
name and the old one under `.NAME.old`, both complete.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, content: str | bytes | Callable[[Path], None], durable: bool = False) -> Path:
    """Write `content` (text, bytes, or a function that writes the file it is given) to `path` atomically.
    `durable`: the file is fsynced before the rename and its folder after, so it survives a power cut."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if callable(content):
            content(tmp)
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content)
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def staging_folder(out: Path, per_process: bool = False) -> Path:
    """An empty hidden sibling of `out` to write the new contents into. `per_process`: named by pid, for
    folders that two processes may build at once (the demos' data beside their runs)."""
    tmp = out.with_name(f".{out.name}.tmp" + (f"-{os.getpid()}" if per_process else ""))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def replace_folder(staged: Path, out: Path) -> Path:
    """Swap `staged` in as `out`, dropping the old `out`."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staged.rename(out)
        shutil.rmtree(old)
    else:
        staged.rename(out)
    return out


def json_ready(value: Any, digits: int = 7) -> Any:
    """`value` with every float rounded to `digits` significant digits (lists and dicts walked): metrics
    computed in float32 read 0.9, not 0.8999999761581421, in the JSON files graft writes."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: json_ready(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, digits) for v in value]
    return value
