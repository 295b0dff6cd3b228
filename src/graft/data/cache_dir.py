"""Where graft keeps what it can rebuild: one root for every cache (torch-free, so discovery may ask).

    $GRAFT_CACHE_DIR                   when set
    $XDG_CACHE_HOME/graft              else, when that is set (the XDG base-directory convention)
    ~/.cache/graft                     else

The order torch.hub ($TORCH_HOME, else $XDG_CACHE_HOME/torch) and Hugging Face ($HF_HOME, else
$XDG_CACHE_HOME/huggingface) follow. A run's `data.cache_dir` wins over all three. Under the root:
features/ and tokens/ (data/feature_cache.py, data/tokens.py) and datasets/ (data/materialize.py).
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    if os.environ.get("GRAFT_CACHE_DIR"):
        return Path(os.environ["GRAFT_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "graft"
