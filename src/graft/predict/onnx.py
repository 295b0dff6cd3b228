"""`graft predict --backend onnx`: the exported model.onnx on onnxruntime, with no torch import.

Preprocessing is predict/preprocess.py (PIL + NumPy, the same pixels as the PyTorch path); classes and
preprocessing come from the sidecar JSON that `graft export` wrote next to the .onnx, and so does the task
(`task_spec`: multi-label thresholds, the regression target), decoded as the PyTorch path decodes
(predict/common.py `Decoder`). There is no export
on the fly: predict never writes into a bundle, and an export takes seconds and is verified once, by
`graft export RUN --format onnx`. A text model's export is fed by the `tokenizers` package from the
tokenizer.json beside it (OnnxTextPredictor), again without torch.

>>> OnnxPredictor.from_path("runs/NAME").predict(["cat.jpg"], top_k=3)[0].label    # doctest: +SKIP
'cat'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from graft.errors import GraftError
from graft.predict.common import (
    AnyPrediction,
    Decoder,
    decoded,
    image_inputs,
    image_name,
    predict_in_batches,
    probabilities_in_batches,
    text_inputs,
)
from graft.predict.preprocess import preprocess_batch
from graft.runs.folder import BUNDLE_META, read_bundle_meta
from graft.runs.locate import locate
from graft.runs.manifest import digest

ONNX_FILE = "model.onnx"  # = export.formats.FORMATS["onnx"].filename (that module imports torch)


class OnnxPredictor:
    modality = "image"

    def __init__(self, path: Path, sidecar: dict[str, Any], threads: int | None = None):
        self.path = path
        self.session = onnx_session(path, threads)
        self.classes: list[str] = sidecar["classes"]
        self.decoder = Decoder.from_meta(sidecar)  # exports written before tasks existed: single-label
        self.preprocessing: dict[str, Any] = sidecar["preprocessing"]
        self.input_name: str = sidecar["input"]["name"]

    @classmethod
    def from_path(cls, path: str | Path, threads: int | None = None) -> OnnxPredictor | OnnxTextPredictor:
        """A run or bundle folder holding an export (model.onnx), or a .onnx file with its sidecar."""
        path = Path(path)
        if path.suffix == ".onnx":
            if not path.is_file():
                raise GraftError(f"{path} not found")
            onnx_file = path
        else:
            onnx_file = locate(path).bundle / ONNX_FILE
            if not onnx_file.is_file():
                raise GraftError(
                    f"no ONNX export in {onnx_file.parent}; create it with: graft export {path} --format onnx"
                )
        sidecar_file = onnx_file.with_name(onnx_file.name + ".json")
        if not sidecar_file.is_file():
            raise GraftError(
                f"{sidecar_file} is missing (graft export writes it next to the .onnx); export again"
            )
        try:
            sidecar = json.loads(sidecar_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise GraftError(f"cannot read {sidecar_file}: {err}; export again") from None
        beside = onnx_file.parent  # exported into a bundle folder: it must be this bundle's export
        if (beside / BUNDLE_META).is_file() and read_bundle_meta(beside).get("created") != sidecar.get(
            "bundle_created"
        ):
            raise GraftError(
                f"{onnx_file} was exported from an earlier version of this bundle; export again: "
                f"graft export {onnx_file.parent} --format onnx"
            )
        expected = sidecar.get("file_digest")  # exports made before graft wrote one are taken as they are
        if expected is not None and digest(onnx_file) != expected:
            raise GraftError(
                f"{onnx_file} does not match the size and checksum {sidecar_file.name} holds for it (a truncated "
                f"or damaged copy); copy it again, or export again: graft export {onnx_file.parent} --format onnx"
            )
        if sidecar.get("task") == "text-classification":
            return OnnxTextPredictor(onnx_file, sidecar, threads)
        return cls(onnx_file, sidecar, threads)

    @property
    def task(self) -> str:
        """ "single-label", "multi-label" or "regression" (graft.tasks)."""
        return self.decoder.task

    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(B, num_classes) float32 for decoded RGB images."""
        batch = preprocess_batch(images, self.preprocessing)
        return self.session.run(None, {self.input_name: batch})[0]

    def predict(
        self,
        inputs: Any,
        top_k: int = 1,
        batch_size: int = 32,
        quiet: bool = False,
    ) -> list[AnyPrediction]:
        """Like graft.predict.images.Predictor.predict (paths, folders, PIL images, numpy arrays, torch
        tensors), on onnxruntime."""
        return predict_in_batches(
            image_inputs(inputs), top_k, batch_size, self.decoder, self._logits, image_name, quiet=quiet
        )

    def predict_proba(self, inputs: Any, batch_size: int = 32, quiet: bool = False) -> np.ndarray:
        """(N, C) float32 probabilities, columns in `.classes` order (the inputs `predict` takes): softmax, or
        a sigmoid per label for multi-label; GraftError for regression (use `predict`)."""
        return probabilities_in_batches(
            image_inputs(inputs), batch_size, self.decoder, self._logits, quiet=quiet
        )

    def _logits(self, chunk: list) -> np.ndarray:
        return self.logits(decoded(chunk))


class OnnxTextPredictor:
    """Like graft.predict.texts.TextPredictor, on onnxruntime with the `tokenizers` package."""

    modality = "text"
    # tokenizers' Encoding attribute for each input a transformers encoder takes
    ENCODING = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}

    def __init__(self, path: Path, sidecar: dict[str, Any], threads: int | None = None):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise GraftError(
                "text models need the tokenizers package: pip install 'torchgraft[text]'"
            ) from None
        spec = sidecar["tokenizer"]
        file = path.parent / spec["file"]
        if not file.is_file():
            raise GraftError(
                f"{file} is missing: graft export writes the tokenizer next to the .onnx; export again"
            )
        self.path, self.session = path, onnx_session(path, threads)
        self.classes: list[str] = sidecar["classes"]
        self.decoder = Decoder.from_meta(sidecar)
        self.input_names: list[str] = sidecar["input"]["names"]
        self.tokenizer = Tokenizer.from_file(str(file))
        # As graft trained and validated: truncate to max_length, pad to the longest text of the batch.
        self.tokenizer.enable_truncation(spec["max_length"])
        self.tokenizer.enable_padding(pad_id=spec["pad_id"], pad_token=spec["pad_token"])

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        feed = {name: np.array([getattr(e, self.ENCODING[name]) for e in encodings], dtype=np.int64)
                for name in self.input_names}  # fmt: skip
        return self.session.run(None, feed)[0]

    task = OnnxPredictor.task

    def predict(
        self, texts: Sequence[str] | str, top_k: int = 1, batch_size: int = 32, quiet: bool = False
    ) -> list[AnyPrediction]:
        return predict_in_batches(text_inputs(texts), top_k, batch_size, self.decoder, self._logits,
                                  unit="texts", quiet=quiet)  # fmt: skip

    def predict_proba(
        self, texts: Sequence[str] | str, batch_size: int = 32, quiet: bool = False
    ) -> np.ndarray:
        """(N, C) float32 probabilities, one row per text, columns in `.classes` order: softmax, or a sigmoid
        per label for multi-label; GraftError for regression (use `predict`)."""
        return probabilities_in_batches(
            text_inputs(texts), batch_size, self.decoder, self._logits, "texts", quiet
        )

    def _logits(self, chunk: list[str]) -> np.ndarray:
        return self.logits(chunk)


def onnx_session(path: Path, threads: int | None = None):
    """An onnxruntime session: CUDA when onnxruntime-gpu is installed, else the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise GraftError("onnxruntime is not installed: pip install 'torchgraft[onnx]'") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # noqa: BLE001  onnxruntime raises its own exception types for bad files
        raise GraftError(
            f"onnxruntime cannot load {path}: {str(err).strip().splitlines()[0][:300]}"
        ) from None
