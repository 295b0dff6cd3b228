"""RUN_OR_BUNDLE -> the bundle folder, the run folder around it (if any) and the bundle's metadata.

`graft eval`, `graft export` and `graft predict --backend onnx` all take either; torch-free, so the ONNX
path stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.errors import GraftError
from graft.runs.folder import BUNDLE_META, RunFolder, find_bundle, read_bundle_meta


@dataclass(frozen=True)
class Located:
    bundle: Path  # the folder holding graft.json and the weights
    run: Path | None  # the run folder it was trained in (config.yaml, split.csv, metrics.csv), if any
    meta: dict[str, Any]  # graft.json

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])


def locate(path: str | Path) -> Located:
    """A run folder (runs/NAME) or a bundle folder (runs/NAME/model, or one copied elsewhere)."""
    path = Path(path)
    if not path.exists():
        raise GraftError(
            f"{path} not found; pass a run folder (runs/NAME) or a bundle folder (runs/NAME/model)"
        )
    bundle = find_bundle(path)
    if bundle is None and RunFolder(path).config.is_file():
        raise GraftError(
            f"run {path} has no bundle yet (no epoch finished); train it to the end or `graft resume {path}`"
        )
    if bundle is None:
        raise GraftError(
            f"{path} is not a graft run or bundle (no {BUNDLE_META} in it or in {RunFolder(path).bundle})"
        )
    meta = read_bundle_meta(bundle)
    run = bundle.parent if RunFolder(bundle.parent).config.is_file() else None
    return Located(bundle, run, meta)
