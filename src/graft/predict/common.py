"""What a prediction is, and which inputs one is made for (files, folders, PIL images, numpy arrays,
torch tensors; texts): shared by every predictor (PyTorch and ONNX).

Kept free of torch so the ONNX path (predict/onnx.py) answers without importing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from graft.data.decode import load_image, to_rgb
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


def probabilities_in_batches(
    items: Sequence, batch_size: int, classes: list[str], probs: Callable[[list], np.ndarray]
) -> np.ndarray:
    """`predict_proba`'s loop: (N, C) float32 probabilities, columns in `classes` order."""
    chunks = [probs(list(items[start : start + batch_size])) for start in range(0, len(items), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(classes)), dtype=np.float32)


IMAGE_INPUTS = (
    "image paths, folders, PIL images, numpy arrays (HxWxC uint8, or HxW grayscale) and torch tensors "
    "(CxHxW or HxWxC, uint8 or float in [0, 1]), one or a list of them"
)
CHANNELS = (1, 3, 4)  # gray, RGB, RGBA


def image_inputs(inputs: Any) -> list[str | Path | Image.Image]:
    """What an image predictor's `predict` takes, as the paths and PIL images it decodes: one image or a
    sequence of them. Folders are expanded recursively in sorted order (as `expand_inputs`), numpy arrays
    and torch tensors become RGB PIL images (a 4-D one is a batch: NxHxWxC, or NxCxHxW for tensors); paths
    and PIL images are kept as given. Anything else is a GraftError, raised before any image is decoded."""
    if isinstance(inputs, (str, os.PathLike, Image.Image)):  # one image, not a sequence of characters
        inputs = [inputs]
    elif _is_array(inputs) and not _holds_strings(inputs):
        return _array_images(inputs)
    elif not hasattr(inputs, "__iter__") or isinstance(inputs, (bytes, dict)):
        raise GraftError(f"cannot predict on {_what(inputs)}; predict takes {IMAGE_INPUTS}")
    items: list[str | Path | Image.Image] = []
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            path = item if isinstance(item, (str, Path)) else Path(os.fspath(item))
            items += expand_inputs([path]) if Path(path).is_dir() else [path]
        elif isinstance(item, Image.Image):
            items.append(item)
        elif _is_array(item) and not _holds_strings(item):
            items += _array_images(item)
        else:
            raise GraftError(f"cannot predict on {_what(item)}; predict takes {IMAGE_INPUTS}")
    return items


def text_inputs(texts: Any) -> list[str]:
    """What a text predictor's `predict` takes: one string or a sequence of strings."""
    if isinstance(texts, str):  # one text, not a sequence of characters
        return [texts]
    if not hasattr(texts, "__iter__") or isinstance(texts, (bytes, dict)):
        raise GraftError(
            f"cannot predict on {_what(texts)}; a text model takes a string or a list of strings"
        )
    items = list(texts)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise GraftError(
                f"cannot predict on {_what(item)} (item {i}); a text model takes a string or a list of strings"
            )
    return items


def _is_tensor(x: Any) -> bool:
    """A torch tensor, recognised without importing torch (the ONNX path stays torch-free)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "numpy") and hasattr(x, "detach")


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or _is_tensor(x)


def _holds_strings(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind in "USO"  # a numpy array of paths


def _what(x: Any) -> str:
    if _is_array(x):
        return _what_array(x, _is_tensor(x))
    kind = type(x).__qualname__
    if type(x).__module__ != "builtins":
        kind = f"{type(x).__module__}.{kind}"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _array_images(x: Any) -> list[Image.Image]:
    """An array or tensor: one image (2-D or 3-D) or a batch of them (4-D)."""
    tensor = _is_tensor(x)
    if tensor:
        t = x.detach().cpu()
        x = (t.float() if t.is_floating_point() else t).numpy()  # bfloat16 has no numpy dtype
    if x.ndim == 4:
        return [_to_image(a, tensor) for a in x]
    return [_to_image(x, tensor)]


def _to_image(a: np.ndarray, tensor: bool) -> Image.Image:
    """HxW, HxWxC (numpy's layout) or CxHxW (torch's) -> an RGB PIL image, decoded as files are (gray
    expanded, transparency composited on white: graft.data.decode.to_rgb)."""
    bad = f"cannot predict on {_what_array(a, tensor)}"
    if a.ndim == 3:
        first, last = a.shape[0] in CHANNELS, a.shape[-1] in CHANNELS
        if first and (tensor or not last):
            a = a.transpose(1, 2, 0)
        elif not last:
            raise GraftError(f"{bad}: an image has 1, 3 or 4 channels, first (CxHxW) or last (HxWxC)")
        if a.shape[-1] == 1:
            a = a[..., 0]
    elif a.ndim != 2:
        raise GraftError(
            f"{bad}: an image is HxW, HxWxC or CxHxW, a batch of them NxHxWxC (NxCxHxW for tensors)"
        )
    if a.size == 0:
        raise GraftError(f"{bad}: it has no pixels")
    if a.dtype.kind == "f":
        lo, hi = float(np.min(a)), float(np.max(a))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            raise GraftError(
                f"{bad}: float pixels must be in [0, 1], these run from {lo:.3g} to {hi:.3g} (already "
                "normalized? pass the image before normalization, or uint8 0-255)"
            )
        a = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif a.dtype.kind in "iu" and a.dtype != np.uint8:
        lo, hi = int(np.min(a)), int(np.max(a))
        if lo < 0 or hi > 255:
            raise GraftError(f"{bad}: integer pixels must be 0-255, these run from {lo} to {hi}")
        a = a.astype(np.uint8)
    elif a.dtype != np.uint8:
        raise GraftError(f"{bad}: pixels are uint8 (0-255) or float (0-1)")
    return to_rgb(Image.fromarray(np.ascontiguousarray(a)))


def _what_array(a: np.ndarray, tensor: bool) -> str:
    return f"a {'tensor' if tensor else 'numpy array'} of shape {tuple(a.shape)} and dtype {a.dtype}"


def decoded(images: Sequence[str | Path | Image.Image]) -> list[Image.Image]:
    """Paths decoded the way training decodes them; PIL images as given."""
    return [x if isinstance(x, Image.Image) else load_image(Path(x)) for x in images]


def image_name(item: str | Path | Image.Image) -> str:
    return "<image>" if isinstance(item, Image.Image) else str(item)
