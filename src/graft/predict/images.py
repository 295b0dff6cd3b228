"""Predict with a bundle (or a run directory): images in, predictions for the bundle's task out.

>>> predictor = graft.load("runs/NAME")                      # doctest: +SKIP
>>> predictor.predict(["cat.jpg"], top_k=3)[0].label         # doctest: +SKIP
'cat'
>>> predictor.predict_proba(["cat.jpg"])                     # doctest: +SKIP
array([[0.97, 0.03]], dtype=float32)

A multi-label bundle's predictions are MultiLabelPrediction (`.labels` above their thresholds, `.scores`:
each label's sigmoid probability), a regression bundle's RegressionPrediction (`.value`: the number);
predict/common.py `Decoder` turns the model's outputs into them.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from timm.data import create_transform

from graft.errors import GraftError
from graft.models.module_input import load_object_bundle
from graft.models.registry import create_model
from graft.predict.common import (  # noqa: F401  (expand_inputs re-exported)
    AnyPrediction,
    Decoder,
    decoded,
    expand_inputs,
    image_inputs,
    image_name,
    predict_in_batches,
    probabilities_in_batches,
)
from graft.runs.folder import BUNDLE_META, find_bundle, read_bundle_meta, verify_bundle
from graft.runs.status import error_line
from graft.runtime import resolve_device


class Predictor:
    modality = "image"

    def __init__(self, model: torch.nn.Module, classes: list[str], data_config: dict, device: torch.device,
                 decoder: Decoder | None = None):  # fmt: skip
        self.model = model.to(device).eval()
        self.classes = classes
        self.data_config = data_config
        self.device = device
        self.transform = create_transform(**data_config, is_training=False)
        self.decoder = decoder or Decoder("single-label", classes)

    @property
    def task(self) -> str:
        """ "single-label", "multi-label" or "regression" (graft.tasks)."""
        return self.decoder.task

    @classmethod
    def from_path(cls, path: str | Path, device: str = "auto", model: Any = None) -> Predictor:
        """`model`: a bundle trained from a custom nn.Module holds only its weights; they are loaded into a
        copy of this object of that architecture (models/module_input.py), which is left unchanged."""
        bundle = find_bundle(Path(path))
        if bundle is None:
            raise GraftError(f"{path} is not a graft bundle or run directory (no {BUNDLE_META})")
        path = bundle
        verify_bundle(path)  # a bit flip or a truncated copy is named, never loaded
        meta = read_bundle_meta(path)
        try:
            if model is not None or meta.get("family") == "module":  # the object's weights, in the object
                built = load_object_bundle(path, meta, model)
            elif meta.get("task") == "text-classification":
                from graft.predict.texts import TextPredictor

                return TextPredictor.from_bundle(path, meta, resolve_device(device))
            else:  # the same loader users call without graft (timm local-dir / torchvision + safetensors)
                built = create_model(str(path.resolve()), num_classes=meta["num_classes"])
        except GraftError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError, SafetensorError) as err:
            # A bundle without a manifest (written before graft kept one) whose weights are damaged or
            # not weights at all: safetensors' and torch's errors, as one line naming the folder.
            raise GraftError(f"cannot load the bundle {path}: {error_line(err)}") from None
        decoder = Decoder.from_meta(meta)
        return cls(built.model, meta["classes"], built.data_config, resolve_device(device), decoder)

    @torch.inference_mode()
    def predict(
        self,
        inputs: Any,
        top_k: int = 1,
        batch_size: int = 32,
        quiet: bool = False,
    ) -> list[AnyPrediction]:
        """A prediction per image: a path, a folder (its images, recursively, in sorted order), a PIL image,
        a numpy array (HxWxC uint8, or HxW grayscale) or a torch tensor (CxHxW or HxWxC, uint8 or float in
        [0, 1]); one or a list of them. In-memory images are named '<image>' in `.input`. Single-label: the
        top `top_k` classes (Prediction); multi-label: the labels above their thresholds with every label's
        probability (MultiLabelPrediction); regression: the number (RegressionPrediction). More than one batch
        of inputs draws a progress bar on stderr (graft/progress.py); `quiet=True`: none."""
        return predict_in_batches(
            image_inputs(inputs), top_k, batch_size, self.decoder, self._logits, image_name, quiet=quiet
        )

    @torch.inference_mode()
    def predict_proba(self, inputs: Any, batch_size: int = 32, quiet: bool = False) -> np.ndarray:
        """(N, C) float32 probabilities, one row per image (the inputs `predict` takes), columns in `.classes`
        order: a softmax over the classes (single-label), or each label's own sigmoid (multi-label; a row
        need not sum to 1). A regression model has no probabilities: GraftError (use `predict`)."""
        return probabilities_in_batches(
            image_inputs(inputs), batch_size, self.decoder, self._logits, quiet=quiet
        )

    def _logits(self, chunk: list) -> np.ndarray:
        batch = torch.stack([self.transform(img.convert("RGB")) for img in decoded(chunk)]).to(self.device)
        return self.model(batch).float().cpu().numpy()
