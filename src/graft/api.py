"""The Python API; the CLI is a thin shell over these functions.

    >>> run = graft.train("my_images/", model="efficientnet_lite0", epochs=5, lr=3e-4)   # doctest: +SKIP
    >>> run.best_metric, run.path                                                        # doctest: +SKIP
    >>> graft.load(run.path).predict(["photo.jpg"], top_k=3)                             # doctest: +SKIP

Keyword arguments are the `graft train` flag names with underscores (`epochs`, `batch_size`, `lr`,
`img_size`, `val`, `val_split`, `out`, `seed`, `device`, `pretrained`, `num_workers`, `accum_steps`, `amp`,
`weights`, `quiet`; the table is `graft.config.ALIASES`) or any dotted config key, e.g.
`**{"optim.weight_decay": 0.05}`; a dict value for a section sets several keys, e.g.
`**{"data.augment": {"hflip": 0.0}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from graft.config import resolve_config
from graft.predict.images import Predictor
from graft.predict.load import load_predictor
from graft.workflow.train import Run, run_training


def train(
    data: str | Path | None = None,
    model: str | None = None,
    *,
    config: str | Path | None = None,
    console: Console | None = None,
    **overrides: Any,
) -> Run:
    """Fine-tune `model` on `data` and return the finished `Run` (checkpoints, metrics, bundle on disk)."""
    named = {key: value for key, value in (("data", data), ("model", model)) if value is not None}
    cfg = resolve_config(config, {**named, **overrides})
    return run_training(cfg, console)


def load(path: str | Path, device: str = "auto", backend: str = "torch") -> Predictor:
    """A predictor for a run directory or a bundle folder (`backend="onnx"`: its ONNX export on
    onnxruntime, or a .onnx file); every one has `predict(inputs, top_k=1, batch_size=32)`."""
    return load_predictor(path, backend=backend, device=device)
