"""Predict with a bundle (or a run directory): images in, labels with probabilities out.

>>> predictor = graft.load("runs/NAME")                      # doctest: +SKIP
>>> predictor.predict(["cat.jpg"], top_k=3)[0].label         # doctest: +SKIP
'cat'
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from timm.data import create_transform

from graft.errors import GraftError
from graft.models.registry import create_model
from graft.predict.common import Prediction, decoded, expand_inputs, image_name, predict_in_batches  # noqa: F401  (expand_inputs re-exported)
from graft.runs.folder import BUNDLE_META, find_bundle, read_bundle_meta, verify_bundle
from graft.runs.status import error_line
from graft.runtime import resolve_device


class Predictor:
    task = "image"

    def __init__(self, model: torch.nn.Module, classes: list[str], data_config: dict, device: torch.device):
        self.model = model.to(device).eval()
        self.classes = classes
        self.data_config = data_config
        self.device = device
        self.transform = create_transform(**data_config, is_training=False)

    @classmethod
    def from_path(cls, path: str | Path, device: str = "auto") -> Predictor:
        bundle = find_bundle(Path(path))
        if bundle is None:
            raise GraftError(f"{path} is not a graft bundle or run directory (no {BUNDLE_META})")
        path = bundle
        verify_bundle(path)  # a bit flip or a truncated copy is named, never loaded
        meta = read_bundle_meta(path)
        try:
            if meta.get("task") == "text-classification":
                from graft.predict.texts import TextPredictor

                return TextPredictor.from_bundle(path, meta, resolve_device(device))
            # The same loader users call without graft (timm local-dir / torchvision + safetensors).
            built = create_model(str(path.resolve()), num_classes=meta["num_classes"])
        except GraftError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError, SafetensorError) as err:
            # A bundle without a manifest (written before graft kept one) whose weights are damaged or
            # not weights at all: safetensors' and torch's errors, as one line naming the folder.
            raise GraftError(f"cannot load the bundle {path}: {error_line(err)}") from None
        return cls(built.model, meta["classes"], built.data_config, resolve_device(device))

    @torch.inference_mode()
    def predict(
        self,
        inputs: Sequence[str | Path | Image.Image] | str | Path | Image.Image,
        top_k: int = 1,
        batch_size: int = 32,
    ) -> list[Prediction]:
        """Predict each image (a path or a PIL image); folders are not expanded here, see `expand_inputs`."""
        if isinstance(inputs, (str, Path, Image.Image)):  # one image, not a sequence of characters
            inputs = [inputs]
        return predict_in_batches(inputs, top_k, batch_size, self.classes, self._probs, image_name)

    def _probs(self, chunk: list) -> np.ndarray:
        batch = torch.stack([self.transform(img.convert("RGB")) for img in decoded(chunk)]).to(self.device)
        return self.model(batch).float().softmax(dim=-1).cpu().numpy()
