"""Checkpoints that survive crashes and tampering: one folder per checkpoint, verified before use.

    runs/NAME/checkpoints/
      step-000120/            one checkpoint
        model.safetensors     the weights (safetensors: no code can hide in them)
        train_state.pt        optimizer, GradScaler and RNG states: tensors and plain values only,
                              read with torch.load(weights_only=True)
        state.json            progress: epoch, step, stage, batch position, history, best/top-k,
                              early stopping, plus the config and classes
        MANIFEST.json         sha256 and size of the three files above, written last (runs/manifest.py)
      index.json              {"last": ..., "best": ..., "top_k": [...]}, replaced atomically

A checkpoint is written into `.step-000120.tmp/`, every file fsync'ed, the manifest last, then the folder is
renamed into place and the parent fsync'ed; only then does index.json point at it. A crash at any moment
leaves the previous checkpoint and index untouched. Loading verifies size and sha256 of every file; a
truncated, bit-flipped or half-written checkpoint is reported and the newest one that verifies is used.
Nothing here knows about training: it stores tensors and JSON-able values.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from graft.errors import GraftError, WriteFailed
from graft.faults import fault
from graft.files import write_atomic
from graft.runs.manifest import MANIFEST, verify_folder, write_manifest

if TYPE_CHECKING:
    import torch

try:
    import resource  # POSIX only: the file size limit (ulimit -f)
except ImportError:  # pragma: no cover
    resource = None

MODEL, TRAIN_STATE, STATE, INDEX = ("model.safetensors", "train_state.pt", "state.json", "index.json")
STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class Checkpoint:
    name: str  # step-000120
    model: dict[str, torch.Tensor]
    train_state: dict[str, Any]  # optimizer, scaler, rng
    state: dict[str, Any]  # JSON: progress, history, config, classes


@dataclass
class Index:
    last: str | None = None
    best: str | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)  # [{"name": ..., "metric": ...}], best first


class CheckpointStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    # ------------------------------------------------------------------------------------------ writing

    def save(
        self, step: int, model: dict[str, torch.Tensor], train_state: dict[str, Any], state: dict
    ) -> str:
        """Write checkpoint `step-{step}` completely, or not at all. Returns its name.

        Disk full (or any write error) removes the partial folder and raises a GraftError that says the
        previous checkpoint is intact.
        """
        import torch

        name = f"step-{step:06d}"
        final, tmp = self.root / name, self.root / f".{name}.tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            save_file({k: v.detach().contiguous().cpu() for k, v in model.items()}, str(tmp / MODEL))
            fault("checkpoint-write")
            with open(tmp / TRAIN_STATE, "wb") as f:
                torch.save(train_state, f)
            (tmp / STATE).write_text(json.dumps(state, indent=1))
            for f in (MODEL, TRAIN_STATE, STATE):
                _fsync(tmp / f)
            write_manifest(tmp, (MODEL, TRAIN_STATE, STATE), durable=True)
            if final.exists():  # the same step saved again (end of epoch right after a step save)
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.root)
        except (
            OSError,
            SafetensorError,
            RuntimeError,
        ) as err:  # safetensors and torch.save word a failed write their own way
            shutil.rmtree(tmp, ignore_errors=True)
            previous = self.read_index().last
            reason = write_error_reason(err, self.root)
            raise WriteFailed(
                f"could not write checkpoint {final}: {reason}; "
                + (
                    f"the previous checkpoint {previous} is intact (free some space, then `graft resume`)"
                    if previous
                    else "no checkpoint was written yet (free some space; `graft train` with the same --out "
                    "starts it over)"
                )
            ) from None
        return name

    def write_index(self, index: Index) -> None:
        _write_durably(self.root / INDEX, json.dumps(index.__dict__, indent=1))

    def read_index(self) -> Index:
        try:
            return Index(**json.loads((self.root / INDEX).read_text()))
        except (OSError, ValueError, TypeError):
            return Index()

    def prune(self, keep: set[str]) -> list[str]:
        """Delete checkpoint folders not in `keep` (and stale temporaries). Returns what was deleted."""
        removed = []
        for path in self.root.iterdir() if self.root.is_dir() else []:
            if path.is_dir() and (
                path.name.endswith(".tmp") or (STEP_DIR.match(path.name) and path.name not in keep)
            ):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    # ------------------------------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        """Checkpoint folders, newest step first."""
        found = (
            [p.name for p in self.root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
            if self.root.is_dir()
            else []
        )
        return sorted(found, key=lambda n: int(STEP_DIR.match(n).group(1)), reverse=True)

    def verify(self, name: str) -> str | None:
        """None if `name` is complete and intact, else what is wrong with it."""
        return verify_folder(self.root / name, required=(MODEL, TRAIN_STATE, STATE))

    def load(self, name: str) -> Checkpoint:
        """Load a checkpoint, verifying each file's bytes against the manifest and deserializing exactly
        those bytes (no gap between check and use, and no memory map a later change to the file could
        pull out from under the tensors). Pickled code in train_state.pt is refused, never executed."""
        import torch

        folder = self.root / name
        problem = self.verify(name)
        if problem:
            raise GraftError(f"checkpoint {folder} is damaged: {problem}")
        manifest = json.loads((folder / MANIFEST).read_text())
        blobs = {}
        for file in (MODEL, TRAIN_STATE, STATE):
            data = (folder / file).read_bytes()
            if hashlib.sha256(data).hexdigest() != manifest[file]["sha256"]:
                raise GraftError(f"checkpoint {folder} is damaged: {file} changed while it was being read")
            blobs[file] = data
        try:
            train_state = torch.load(io.BytesIO(blobs[TRAIN_STATE]), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise GraftError(
                f"refused to load {folder / TRAIN_STATE}: it contains code or objects other than tensors and "
                f"plain values ({str(err).splitlines()[0][:160]}); it was not executed. Do not trust this file."
            ) from None
        return Checkpoint(name, load(blobs[MODEL]), train_state, json.loads(blobs[STATE]))

    def latest_good(self, report: list[str] | None = None) -> Checkpoint | None:
        """The checkpoint to resume from: index.json's last if it verifies, else the newest that does.

        Each damaged checkpoint skipped is described in `report`.
        """
        preferred = self.read_index().last
        candidates = ([preferred] if preferred else []) + [n for n in self.names() if n != preferred]
        for name in candidates:
            if not (self.root / name).is_dir():
                continue
            problem = self.verify(name)
            if problem is None:
                return self.load(name)
            if report is not None:
                report.append(f"checkpoint {name} is damaged ({problem}); falling back to an older one")
        return None


def write_error_reason(err: BaseException, folder: Path | None = None) -> str:
    """Why a write failed, in words. The OS says it with an errno; safetensors and torch.save (a C++ zip
    writer: "unexpected pos ...") do not, so for those the folder's free space and the process's file size
    limit are asked."""
    text, code = str(err), getattr(err, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or any(words in text for words in ("No space left", "code: 28")):
        return "the disk is full"
    if code == errno.EFBIG or "File too large" in text:
        return "a file size limit was reached (ulimit -f)"
    if code is None and folder is not None:
        try:
            if shutil.disk_usage(folder).free < 16 << 20:
                return "the disk is full"
        except OSError:
            pass
        if resource is not None and resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return "a file size limit was reached (ulimit -f)"
    return getattr(err, "strerror", None) or text.strip().splitlines()[0][:200]


# torch (safetensors.torch imports it) loads only where tensors are read or written: reading the index and
# verifying checksums, what `graft runs` does, must answer in well under torch's ~2 s import.
def save_file(tensors: dict[str, torch.Tensor], path: str) -> None:
    from safetensors.torch import save_file as write

    write(tensors, path)


def load(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as read

    return read(data)


def _write_durably(path: Path, text: str) -> None:
    """Write `text` to `path` atomically and durably: temp file, fsync, rename, fsync the folder."""
    write_atomic(path, text, durable=True)
    _fsync_dir(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # Persist renames in the folder; without this a power loss can forget them on some file systems.
    if os.name == "posix":
        _fsync(directory)
