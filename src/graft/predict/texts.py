"""Predict with a text bundle: strings in, labels with probabilities out (transformers does the work)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graft.predict.common import Prediction, predict_in_batches, probabilities_in_batches, text_inputs


class TextPredictor:
    task = "text"

    def __init__(self, hf: Any, tokenizer: Any, classes: list[str], max_length: int, device: torch.device):
        from graft.models.text_encoder import TextClassifier

        # graft's wrapper (dict batch -> logits, layer groups) around the plain transformers model.
        self.model = TextClassifier(hf).to(device).eval()
        self.tokenizer, self.classes, self.max_length, self.device = tokenizer, classes, max_length, device

    @classmethod
    def from_bundle(cls, path: Path, meta: dict, device: torch.device) -> TextPredictor:
        from graft.models.text_encoder import quiet_transformers, refuse_remote_code

        quiet_transformers()
        refuse_remote_code(path)
        # The loaders anyone would call without graft, never running code from the folder.
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(path), trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        return cls(model, tokenizer, meta["classes"], meta["preprocessing"].get("max_length", 512), device)

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Padded to the longest in the batch, truncated to the bundle's max_length (as in training)."""
        return self.tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                              max_length=self.max_length, padding=True, return_tensors="pt")  # fmt: skip

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> torch.Tensor:
        """(B, num_classes) float32 logits on the CPU."""
        return self.model(self.tokenize(texts, pairs).to(self.device)).float().cpu()

    def predict(self, texts: Sequence[str] | str, top_k: int = 1, batch_size: int = 32) -> list[Prediction]:
        """The top `top_k` labels of each text (one string or a list of them)."""
        return predict_in_batches(text_inputs(texts), top_k, batch_size, self.classes, self._probs)

    def predict_proba(self, texts: Sequence[str] | str, batch_size: int = 32) -> np.ndarray:
        """(N, C) float32 probabilities, one row per text, columns in `.classes` order."""
        return probabilities_in_batches(text_inputs(texts), batch_size, self.classes, self._probs)

    def _probs(self, chunk: list[str]) -> np.ndarray:
        return self.logits(chunk).softmax(dim=-1).numpy()
