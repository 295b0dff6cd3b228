"""Class balance: what `data.balance: auto` means for the measured class sizes, and the sampler draw
weights or loss weights (cross-entropy per class; multi-label: BCE's pos_weight per label) a run uses."""

from __future__ import annotations

from graft.data.discover import DataSpec
from graft.errors import GraftError


def choose_balance(train_counts: list[int]) -> tuple[str, str]:
    """What data.balance=auto means for these class sizes, and why.

    Up to 2x, plain cross-entropy: the bias is small and reweighting only adds gradient noise. Up to 10x,
    class-weighted loss: every sample is seen once per epoch, the rare classes count as much in total.
    Beyond 10x, a weighted sampler: a loss weight of 10x or more on a handful of samples makes steps
    erratic, while oversampling shows the rare samples often, each time differently augmented."""
    ratio = max(train_counts) / max(min(train_counts), 1)
    if ratio < 2:
        return "none", "classes within 2x of each other"
    if ratio < 10:
        return "loss", "class-weighted cross-entropy, for imbalance under 10x"
    return "sampler", "weighted sampling, for imbalance of 10x or more"


def class_weights(train_counts: list[int]) -> list[float]:
    """Cross-entropy weights n / (classes * n_c) (sklearn's "balanced"): every class weighs the same in total."""
    total, k = sum(train_counts), len(train_counts)
    return [total / (k * max(n, 1)) for n in train_counts]


def sample_weights(labels: list[int], train_counts: list[int]) -> list[float]:
    """Per-sample draw weights 1 / n_class: each class is drawn equally often."""
    return [1.0 / train_counts[label] for label in labels]


def resolve_balance(balance: str, spec: DataSpec) -> str:
    """data.balance with auto replaced by the choice for this data's class sizes. Regression has no
    classes to balance; multi-label balances only when asked (--balance loss: BCE's pos_weight), since its
    thresholds are tuned per label on validation anyway."""
    if spec.task.name != "single-label":
        if balance == "sampler" or (balance == "loss" and spec.task.name == "regression"):
            raise GraftError(f"--balance {balance} is not available for {spec.task.name}: "
                             f"choose {'none or loss' if spec.task.name == 'multi-label' else 'none'}")  # fmt: skip
        return "none" if balance == "auto" else balance
    return choose_balance(list(spec.counts("train").values()))[0] if balance == "auto" else balance


POS_WEIGHT_MAX = 10.0  # a label in 1% of the samples weighs its positives 10x, not 99x (steps stay steady)


def balance_weights(balance: str, spec: DataSpec) -> tuple[list[float] | None, list[float] | None]:
    """(per-sample draw weights for the training sampler, per-class loss weights) for a resolved balance;
    multi-label's loss weights are BCE's pos_weight per label: negatives / positives, at most POS_WEIGHT_MAX."""
    counts = list(spec.counts("train").values())
    if spec.task.name == "multi-label":
        n = len(spec.train)
        return None, (
            [min(POS_WEIGHT_MAX, (n - c) / max(c, 1)) for c in counts] if balance == "loss" else None
        )
    if balance == "sampler":
        return sample_weights([s.label for s in spec.train], counts), None
    if balance == "loss":
        return None, class_weights(counts)
    return None, None
