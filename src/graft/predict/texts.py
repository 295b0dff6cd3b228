"""Predict with a text bundle: strings in, predictions for the bundle's task out (transformers does the
model work, predict/common.py `Decoder` the decoding)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graft.predict.common import (
    AnyPrediction,
    Decoder,
    predict_in_batches,
    probabilities_in_batches,
    text_inputs,
)


class TextPredictor:
    modality = "text"

    def __init__(self, hf: Any, tokenizer: Any, classes: list[str], max_length: int, device: torch.device,
                 decoder: Decoder | None = None):  # fmt: skip
        from graft.models.text_encoder import TextClassifier

        # graft's wrapper (dict batch -> logits, layer groups) around the plain transformers model.
        self.model = TextClassifier(hf).to(device).eval()
        self.tokenizer, self.classes, self.max_length, self.device = tokenizer, classes, max_length, device
        self.decoder = decoder or Decoder("single-label", classes)

    @property
    def task(self) -> str:
        """ "single-label", "multi-label" or "regression" (graft.tasks)."""
        return self.decoder.task

    @classmethod
    def from_bundle(cls, path: Path, meta: dict, device: torch.device) -> TextPredictor:
        from graft.models.text_encoder import quiet_transformers, refuse_remote_code

        quiet_transformers()
        refuse_remote_code(path)
        # The loaders anyone would call without graft, never running code from the folder.
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(path), trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        max_length = meta["preprocessing"].get("max_length", 512)
        return cls(model, tokenizer, meta["classes"], max_length, device, Decoder.from_meta(meta))

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Padded to the longest in the batch, truncated to the bundle's max_length (as in training)."""
        return self.tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                              max_length=self.max_length, padding=True, return_tensors="pt")  # fmt: skip

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> torch.Tensor:
        """(B, num_classes) float32 logits on the CPU."""
        return self.model(self.tokenize(texts, pairs).to(self.device)).float().cpu()

    def predict(
        self, texts: Sequence[str] | str, top_k: int = 1, batch_size: int = 32, quiet: bool = False
    ) -> list[AnyPrediction]:
        """A prediction per text (one string or a list of them), as images.Predictor.predict: the top
        `top_k` classes, the labels above their thresholds, or the number, by the bundle's task; a bar
        on stderr over more than one batch, unless `quiet`."""
        return predict_in_batches(text_inputs(texts), top_k, batch_size, self.decoder, self._logits,
                                  unit="texts", quiet=quiet)  # fmt: skip

    def predict_proba(
        self, texts: Sequence[str] | str, batch_size: int = 32, quiet: bool = False
    ) -> np.ndarray:
        """(N, C) float32 probabilities, one row per text, columns in `.classes` order: softmax, or a sigmoid
        per label for multi-label. A regression model has none: GraftError (use `predict`)."""
        return probabilities_in_batches(
            text_inputs(texts), batch_size, self.decoder, self._logits, "texts", quiet
        )

    def _logits(self, chunk: list[str]) -> np.ndarray:
        return self.logits(chunk).numpy()
