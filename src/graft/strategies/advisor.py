"""Measure a dataset against a pretrained backbone and pick a strategy (the seed notes' 2x2 table).

                    features already fit (similar)        features do not fit (different)
  little data       linear-probe: train the head only     gradual: head first, then the top blocks,
                                                           lower LRs below, augmentation on
  enough data       gradual: a light fine-tune             discriminative: train everything, lower
                                                           LRs toward the input

"Similar" is measured, not guessed: the leave-one-out k-NN accuracy of the frozen backbone's features on
a class-balanced sample of the training images, rescaled so chance is 0 and perfect is 1. If the
pretrained features already separate the classes, the backbone knows this domain. The shift of the
first BatchNorm layer's input statistics from its pretraining running statistics is reported beside it
(how far the pixels are from what the backbone saw), as a second, independent view.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from graft.data.discover import DataSpec, Sample
from graft.data.feature_cache import extract_features

LITTLE_DATA = 200  # median training samples per class below which data counts as "little"
SIMILAR = 0.8  # k-NN separability (0 = chance, 1 = perfect) from which the features "already fit"
SAMPLE_PER_CLASS = 40  # samples per class measured (k-NN cost grows with the square of the sample)
K = 10
UNITS = {"image": "images", "text": "texts"}  # DataSpec.task -> what its samples are called


@dataclass
class Advice:
    strategy: str
    reason: str  # one line, with the numbers behind it
    num_classes: int
    train_images: int  # training samples, images or texts (advice.json's readers know this name)
    median_per_class: float
    min_per_class: int
    imbalance: float  # largest class / smallest class
    pretrained: bool
    sample_size: int = 0
    knn_accuracy: float | None = None
    separability: float | None = None  # (knn_accuracy - chance) / (1 - chance)
    input_shift: float | None = None  # mean |z| of first-BatchNorm input means vs its running statistics

    def to_dict(self) -> dict:
        return asdict(self)


def recommend(
    median_per_class: float, separability: float | None, pretrained: bool, unit: str = "images"
) -> tuple[str, str]:
    """The 2x2 table as a pure function: (strategy, one-line reason); `unit` names the samples in it
    ("images", "texts")."""
    if not pretrained:
        return "full", "no pretrained weights: every layer has to be learned"
    little = median_per_class < LITTLE_DATA
    size = f"{median_per_class:.0f} {unit} per class ({'little' if little else 'enough'} data, threshold {LITTLE_DATA})"
    fit = separability is not None and separability >= SIMILAR
    shown = f"{separability:.2f}" if separability is not None else "n/a"
    features = (
        f"frozen-feature k-NN separability {shown} ({'similar' if fit else 'different'}, threshold {SIMILAR})"
    )
    table = {
        (True, True): (
            "linear-probe",
            "the pretrained features already separate the classes: train the head only",
        ),
        (True, False): (
            "gradual",
            f"few {unit} and unfamiliar features: head first, then unfreeze from the top",
        ),
        (False, True): ("gradual", f"familiar features and enough {unit}: a light fine-tune from the top"),
        (False, False): (
            "discriminative",
            f"enough {unit} to retrain everything, at lower LRs toward the input",
        ),
    }
    strategy, why = table[(little, fit)]
    return strategy, f"{why}; {size}, {features}"


def advise(
    spec: DataSpec,
    model: nn.Module,
    head: nn.Module | None,
    make_loader: callable,
    pretrained: bool,
    device: torch.device,
    seed: int = 0,
) -> Advice:
    """Measure `spec`'s training data on `model` (pretrained, eval mode) and recommend a strategy.

    `make_loader(samples)` returns an evaluation DataLoader (no augmentation) over `samples`.
    """
    counts = [n for n in spec.counts("train").values()]
    median = statistics.median(counts)
    advice = Advice(
        strategy="full",
        reason="",
        num_classes=len(spec.classes),
        train_images=len(spec.train),
        median_per_class=median,
        min_per_class=min(counts),
        imbalance=max(counts) / max(1, min(counts)),
        pretrained=pretrained,
    )
    # The k-NN measure needs one class per sample; for multi-label and regression the table decides from
    # the amount of data alone (the solved head, on by default, measures them properly).
    if pretrained and head is not None and spec.task.name == "single-label":
        sample = _balanced_sample(spec.train, SAMPLE_PER_CLASS, seed)
        shift = _InputShift(model)
        features, labels = extract_features(model, head, make_loader(sample), device, None,
                                            "advise frozen features of a class-balanced sample", UNITS[spec.modality])  # fmt: skip
        shift.remove()
        accuracy = knn_accuracy(features, labels, K)
        advice.sample_size = len(sample)
        advice.knn_accuracy = accuracy
        advice.separability = separability(accuracy, len(spec.classes))
        advice.input_shift = shift.value()
    advice.strategy, advice.reason = recommend(median, advice.separability, pretrained, UNITS[spec.modality])
    return advice


def separability(knn_accuracy: float, num_classes: int) -> float:
    """k-NN accuracy rescaled so chance is 0 and perfect is 1."""
    chance = 1 / num_classes
    return max(0.0, (knn_accuracy - chance) / (1 - chance))


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = K) -> float:
    """Leave-one-out accuracy of a cosine-similarity k-NN vote (ties: nearest first) over `features`."""
    x = F.normalize(features.float(), dim=1)
    similarity = x @ x.T
    similarity.fill_diagonal_(-float("inf"))  # leave one out: a sample is not its own neighbour
    k = min(k, len(labels) - 1)
    neighbours = similarity.topk(k, dim=1).indices  # (N, k), nearest first
    votes = F.one_hot(labels[neighbours], int(labels.max()) + 1).float()
    votes += torch.linspace(1e-3, 0, k)[None, :, None]  # break ties toward the nearer neighbours
    predicted = votes.sum(dim=1).argmax(dim=1)
    return (predicted == labels).float().mean().item()


def _balanced_sample(samples: list[Sample], per_class: int, seed: int) -> list[Sample]:
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: (s.label, s.key)):
        by_class[s.label].append(s)
    rng = random.Random(seed)
    return [
        s
        for label in sorted(by_class)
        for s in rng.sample(by_class[label], min(per_class, len(by_class[label])))
    ]


class _InputShift:
    """Watches the first BatchNorm: how far (in running-std units) the data's channel means are from the
    means the backbone saw in pretraining. Around 0.1-0.5 for natural photos on ImageNet backbones."""

    def __init__(self, model: nn.Module):
        self.sum = self.count = None
        self.bn = next((m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)), None)
        self.handle = self.bn.register_forward_hook(self._hook) if self.bn is not None else None

    def _hook(self, module: nn.Module, args: tuple, _output: torch.Tensor) -> None:
        x = args[0].detach().float()
        dims = [d for d in range(x.ndim) if d != 1]
        batch_sum, batch_count = x.sum(dim=dims), x.numel() / x.shape[1]
        self.sum = batch_sum if self.sum is None else self.sum + batch_sum
        self.count = batch_count if self.count is None else self.count + batch_count

    def value(self) -> float | None:
        if self.sum is None or self.bn.running_mean is None:
            return None
        mean = (self.sum / self.count).cpu()
        z = (mean - self.bn.running_mean.cpu()).abs() / (self.bn.running_var.cpu() + self.bn.eps).sqrt()
        return z.mean().item()

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()


def evaluation_loader(dataset_factory: callable, batch_size: int) -> callable:
    """Helper for callers: samples -> DataLoader without shuffling or workers."""
    return lambda samples: DataLoader(dataset_factory(samples), batch_size=batch_size, shuffle=False)
