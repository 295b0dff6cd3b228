"""Predict with a text bundle: strings in, labels with probabilities out (transformers does the work)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from graft.prediction import Prediction


class TextPredictor:
    task = "text"

    def __init__(self, model: Any, tokenizer: Any, classes: list[str], max_length: int, device: torch.device):
        self.model = model.to(device).eval()
        self.tokenizer, self.classes, self.max_length, self.device = tokenizer, classes, max_length, device

    @classmethod
    def from_bundle(cls, path: Path, meta: dict, device: torch.device) -> TextPredictor:
        from graft.models.text import quiet_transformers

        quiet_transformers()
        # The loaders anyone would call without graft.
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return cls(model, tokenizer, meta["classes"], meta["preprocessing"].get("max_length", 512), device)

    @torch.inference_mode()
    def predict(self, texts: Sequence[str] | str, top_k: int = 1, batch_size: int = 32) -> list[Prediction]:
        if isinstance(texts, str):  # one text, not a sequence of characters
            texts = [texts]
        k = max(1, min(top_k, len(self.classes)))
        predictions = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            batch = self.tokenizer(chunk, truncation=True, max_length=self.max_length, padding=True,
                                   return_tensors="pt").to(self.device)  # fmt: skip
            probs = self.model(**batch).logits.float().softmax(dim=-1)
            scores, indices = probs.topk(k, dim=-1)
            for text, row_scores, row_indices in zip(chunk, scores.tolist(), indices.tolist()):
                ranked = [(self.classes[i], s) for i, s in zip(row_indices, row_scores)]
                predictions.append(Prediction(text, ranked[0][0], ranked[0][1], ranked))
        return predictions
