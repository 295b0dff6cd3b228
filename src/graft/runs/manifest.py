"""MANIFEST.json: the size and SHA-256 of every file of a folder, written last, so a folder whose manifest
does not verify is known to be incomplete or damaged. Checkpoints (runs/store.py) and bundles
(exporting/bundle.py) carry one; readers call `verify_folder` before trusting the bytes.

Standard library only: `graft runs` verifies checkpoints without importing torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graft.files import write_atomic

MANIFEST = "MANIFEST.json"


def digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"sha256": h.hexdigest(), "size": path.stat().st_size}


def folder_files(folder: Path) -> list[str]:
    """Every file under `folder` (relative, '/'-separated, sorted), the manifest itself excluded."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def write_manifest(folder: Path, files: Iterable[str], durable: bool = False) -> dict[str, Any]:
    manifest = {name: digest(folder / name) for name in files}
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1), durable=durable)
    return manifest


def read_manifest(folder: Path) -> dict[str, dict[str, Any]] | str:
    """The manifest of `folder`, or what is wrong with it (a message for a one-line error)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return f"no {MANIFEST}: the write did not finish"
    except (OSError, ValueError):
        return f"{MANIFEST} is unreadable"
    entries_ok = isinstance(manifest, dict) and all(
        isinstance(e, dict) and isinstance(e.get("size"), int) and isinstance(e.get("sha256"), str)
        for e in manifest.values()
    )
    return manifest if entries_ok else f"{MANIFEST} is not a manifest (a size and sha256 per file)"


def verify_folder(folder: Path, required: Iterable[str] = ()) -> str | None:
    """None if every file the manifest lists (and every `required` one) is there, whole and unchanged;
    else what is wrong, naming the file."""
    manifest = read_manifest(folder)
    if isinstance(manifest, str):
        return manifest
    for name in required:
        if name not in manifest:
            return f"{MANIFEST} does not list {name}"
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{name} is {path.stat().st_size} bytes, the manifest says {expected['size']} (truncated?)"
        if digest(path)["sha256"] != expected["sha256"]:
            return f"{name} does not match its checksum (corrupted)"
    return None
