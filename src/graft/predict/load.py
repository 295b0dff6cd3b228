"""One way in to prediction: `load_predictor(path, backend=...)` for a run folder, a bundle folder or an
exported .onnx file. Whatever the modality (images, texts), task and backend (PyTorch, onnxruntime), the
predictor has one face: `.modality` ("image" or "text"), `.task` ("single-label", "multi-label" or
"regression"), `.classes`, and `predict(inputs, top_k=1, batch_size=32)` -> one prediction per input
(predict/common.py: Prediction with the top k classes, MultiLabelPrediction with the labels above their
thresholds and every label's sigmoid probability, RegressionPrediction with the number; each has `.input`,
`.value`, `.scores` and `.to_dict()`), and `predict_proba(inputs) -> (N, C) array` (softmax; a sigmoid per
label for multi-label; a regression model has no probabilities and raises GraftError). Inputs: paths,
folders, PIL images, numpy arrays, torch tensors; texts for text bundles.

    >>> load_predictor("runs/NAME").predict(["cat.jpg"], top_k=3)                    # doctest: +SKIP
    >>> load_predictor("runs/NAME", backend="onnx").predict(["cat.jpg"])             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graft.errors import GraftError

BACKENDS = ("torch", "onnx")


def load_predictor(
    path: str | Path, backend: str = "torch", device: str = "auto", threads: int | None = None,
    model: Any = None,
) -> Any:  # fmt: skip
    """`device` is for the PyTorch backend (auto, cpu, cuda[:N]); `threads` for onnxruntime's intra-op pool;
    `model`: for a bundle trained from a custom nn.Module, an object of that architecture (PyTorch backend;
    its ONNX export needs none)."""
    if backend == "onnx":  # imported lazily: the ONNX path answers without importing torch
        if model is not None:
            raise GraftError(
                "model=: the ONNX backend runs the exported graph, which needs no module; drop model="
            )
        from graft.predict.onnx import OnnxPredictor

        return OnnxPredictor.from_path(path, threads)
    if backend == "torch":
        from graft.predict.images import Predictor

        return Predictor.from_path(path, device=device, model=model)
    raise GraftError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
