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

from graft.config.task_names import TASK_NAMES
from graft.data.decode import array_to_image, load_image, tensor_values
from graft.data.folders import IMAGE_EXTENSIONS
from graft.errors import GraftError
from graft.progress import Step, step_bar


@dataclass
class Prediction:
    """A single-label prediction: the most probable class and the runners-up."""

    input: str
    label: str
    score: float  # softmax probability of `label`
    top_k: list[tuple[str, float]]

    @property
    def value(self) -> str:  # every prediction has .input, .value and .scores
        return self.label

    @property
    def scores(self) -> dict[str, float]:
        return dict(self.top_k)

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
        }


@dataclass
class MultiLabelPrediction:
    """A multi-label prediction: every label whose probability reaches its threshold (tuned on validation,
    stored in the bundle), most probable first, and every label's probability (its own sigmoid)."""

    input: str
    labels: list[str]  # above their thresholds, most probable first; may be empty
    scores: dict[str, float]  # every class's sigmoid probability, in the bundle's class order

    @property
    def value(self) -> list[str]:
        return self.labels

    def ranked(self) -> list[tuple[str, float]]:
        """Every (label, probability), most probable first."""
        return sorted(self.scores.items(), key=lambda item: -item[1])

    def to_dict(self) -> dict:
        return {"input": self.input, "value": list(self.labels), "scores": dict(self.scores)}


@dataclass
class RegressionPrediction:
    """A regression prediction: the number itself, in the target's units (the bundle's head outputs it)."""

    input: str
    value: float
    target: str = "target"  # what the number is (the CSV's target column)

    @property
    def scores(self) -> dict[str, float]:
        return {}

    def to_dict(self) -> dict:
        return {"input": self.input, "value": self.value, "scores": {}}


AnyPrediction = Prediction | MultiLabelPrediction | RegressionPrediction


@dataclass(frozen=True)
class Decoder:
    """The bundle's outputs (logits) -> predictions, for its task; NumPy only, so PyTorch and onnxruntime
    predictors decode alike (graft.tasks' `Task.decode` is the torch twin, and a test keeps them equal).

      single-label   softmax over the classes; the top k
      multi-label    one sigmoid per label; the labels at or above their thresholds
      regression     the one output is the number (the bundle folded the training scaling into its head)
    """

    task: str  # graft.config.task_names.TASK_NAMES
    classes: list[str]
    thresholds: list[float] | None = None  # multi-label: per class
    target: str = "target"  # regression: the target's name

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Decoder:
        """From graft.json or an export's sidecar: `classes` and `task_spec` (none: single-label, as bundles
        written before tasks existed are)."""
        spec = meta.get("task_spec") or {}
        task, classes = spec.get("name", "single-label"), list(meta["classes"])
        if task not in TASK_NAMES:
            raise GraftError(
                f"the bundle's task {task!r} is not one this graft predicts ({', '.join(TASK_NAMES)}); upgrade graft"
            )
        thresholds = spec.get("thresholds") if task == "multi-label" else None
        if thresholds is not None and len(thresholds) != len(classes):
            raise GraftError(
                f"the bundle has {len(thresholds)} thresholds for {len(classes)} classes; retrain"
            )
        return cls(
            task, classes, thresholds, spec.get("target", classes[0] if task == "regression" else "target")
        )

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(B, C) float32: softmax (single-label) or a sigmoid per label (multi-label)."""
        if self.task == "regression":
            raise GraftError(
                f"a regression model has no probabilities: predict() returns the {self.target} itself "
                "(each prediction's .value)"
            )
        logits = np.asarray(logits, dtype=np.float32)
        return sigmoid(logits) if self.task == "multi-label" else softmax(logits)

    def decode(self, names: Sequence[str], logits: np.ndarray, top_k: int = 1) -> list[AnyPrediction]:
        """One prediction per row of (B, C) logits; `top_k` matters to single-label only."""
        if self.task == "regression":
            values = np.asarray(logits, dtype=np.float64).reshape(len(names), -1)[:, 0]
            return [RegressionPrediction(name, float(v), self.target) for name, v in zip(names, values)]
        probs = self.probabilities(logits)
        if self.task == "single-label":
            return ranked(names, probs, max(1, min(top_k, len(self.classes))), self.classes)
        cut = np.asarray(self.thresholds or [DEFAULT_THRESHOLD] * len(self.classes), dtype=np.float32)
        out = []
        for name, row in zip(names, probs):
            order = np.argsort(-row, kind="stable")
            out.append(MultiLabelPrediction(name, [self.classes[i] for i in order if row[i] >= cut[i]],
                                            dict(zip(self.classes, map(float, row)))))  # fmt: skip
        return out


DEFAULT_THRESHOLD = 0.5  # = graft.tasks.multi.DEFAULT_THRESHOLD: a bundle written before tuning


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


def sigmoid(logits: np.ndarray) -> np.ndarray:
    # exp of -|x| only: no overflow warning for large logits of either sign
    e = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1 / (1 + e), e / (1 + e)).astype(logits.dtype)


def predict_in_batches(
    items: Sequence, top_k: int, batch_size: int, decoder: Decoder, logits: Callable[[list], np.ndarray],
    name: Callable[[object], str] = str, unit: str = "images", quiet: bool = False,
) -> list[AnyPrediction]:  # fmt: skip
    """Every predictor's loop: `logits(chunk)` -> (B, C) outputs for each chunk of `batch_size` items."""
    predictions = []
    with _bar(items, batch_size, unit, quiet) as bar:
        for start in range(0, len(items), batch_size):
            chunk = list(items[start : start + batch_size])
            predictions += decoder.decode([name(x) for x in chunk], logits(chunk), top_k)
            bar.advance(len(chunk))
    return predictions


def probabilities_in_batches(
    items: Sequence, batch_size: int, decoder: Decoder, logits: Callable[[list], np.ndarray],
    unit: str = "images", quiet: bool = False,
) -> np.ndarray:  # fmt: skip
    """`predict_proba`'s loop: (N, C) float32 probabilities, columns in the decoder's class order."""
    decoder.probabilities(
        np.zeros((0, len(decoder.classes)), dtype=np.float32)
    )  # regression: refused at once
    chunks = []
    with _bar(items, batch_size, unit, quiet) as bar:
        for start in range(0, len(items), batch_size):
            chunks.append(decoder.probabilities(logits(list(items[start : start + batch_size]))))
            bar.advance(len(chunks[-1]))
    return np.concatenate(chunks) if chunks else np.zeros((0, len(decoder.classes)), dtype=np.float32)


def _bar(items: Sequence, batch_size: int, unit: str, quiet: bool) -> Step:
    """A bar over the batches when there are several (one batch answers before a bar would show), on
    stderr unless the caller's code set another console (graft/progress.py): stdout may carry the
    predictions (`graft predict --json`)."""
    return step_bar("predict", len(items), unit, quiet=quiet or len(items) <= batch_size)


IMAGE_INPUTS = (
    "image paths, folders, PIL images, numpy arrays (HxWxC uint8, or HxW grayscale) and torch tensors "
    "(CxHxW or HxWxC, uint8 or float in [0, 1]), one or a list of them"
)


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
        x = tensor_values(x)
    if x.ndim == 4:
        return [array_to_image(a, tensor, f"cannot predict on {_what_array(a, tensor)}") for a in x]
    return [array_to_image(x, tensor, f"cannot predict on {_what_array(x, tensor)}")]


def _what_array(a: np.ndarray, tensor: bool) -> str:
    return f"a {'tensor' if tensor else 'numpy array'} of shape {tuple(a.shape)} and dtype {a.dtype}"


def decoded(images: Sequence[str | Path | Image.Image]) -> list[Image.Image]:
    """Paths decoded the way training decodes them; PIL images as given."""
    return [x if isinstance(x, Image.Image) else load_image(Path(x)) for x in images]


def image_name(item: str | Path | Image.Image) -> str:
    return "<image>" if isinstance(item, Image.Image) else str(item)
