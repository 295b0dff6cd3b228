"""What a prediction is, and which files one is made for: shared by every predictor (PyTorch and ONNX).

Kept free of torch so the ONNX path (predict/onnx.py) answers without importing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from graft.data.decode import load_image
from graft.data.discover import IMAGE_EXTENSIONS
from graft.errors import GraftError


@dataclass
class Prediction:
    input: str
    label: str
    score: float  # softmax probability of `label`
    top_k: list[tuple[str, float]]

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
        }


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for images, in sorted order."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise GraftError(f"folder {path} has no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise GraftError(f"input not found: {path}")
    return paths


def ranked(names: Sequence[str], probs: np.ndarray, k: int, classes: list[str]) -> list[Prediction]:
    """One Prediction per row of (B, C) probabilities: the top k classes, best first."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = []
    for name, row, indices in zip(names, probs, top):
        labels = [(classes[i], float(row[i])) for i in indices]
        out.append(Prediction(name, labels[0][0], labels[0][1], labels))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # no overflow for large logits
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predict_in_batches(
    items: Sequence, top_k: int, batch_size: int, classes: list[str], probs: Callable[[list], np.ndarray],
    name: Callable[[object], str] = str,
) -> list[Prediction]:  # fmt: skip
    """Every predictor's loop: `probs(chunk)` -> (B, C) probabilities for each chunk of `batch_size` items."""
    k = max(1, min(top_k, len(classes)))
    predictions = []
    for start in range(0, len(items), batch_size):
        chunk = list(items[start : start + batch_size])
        predictions += ranked([name(x) for x in chunk], probs(chunk), k, classes)
    return predictions


def decoded(images: Sequence[str | Path | Image.Image]) -> list[Image.Image]:
    """Paths decoded the way training decodes them; PIL images as given."""
    return [x if isinstance(x, Image.Image) else load_image(Path(x)) for x in images]


def image_name(item: str | Path | Image.Image) -> str:
    return "<image>" if isinstance(item, Image.Image) else str(item)
