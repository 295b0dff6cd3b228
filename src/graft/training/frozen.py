"""What the frozen parts of a model compute once, and what is solved or measured on it.

One pass over the un-augmented training and validation data (data/feature_cache.py, cached on disk)
records the head's input features and the activation at every cut a stage may start from
(strategies/cuts.py). On those tensors:
- the head is solved (strategies/probe.py) and evaluated on the validation features: the run's first
  model, "epoch 0", in seconds;
- `--strategy auto` times a few real training steps of each way to fine-tune (the top k groups from
  their cut) to know what this machine can afford (strategies/auto.py);
- stages that train above a frozen part run from the stored activations instead of the images.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from graft.config import Config
from graft.data.cache_dir import default_cache_dir
from graft.data.discover import DataSpec
from graft.data.feature_cache import (
    FeatureCache,
    HiddenStates,
    Tap,
    cached_tensors,
    pad_hidden,
    tap_loaders,
)
from graft.monitoring.monitor import EvalOutputs
from graft.progress import status
from graft.runtime import autocast, to_device
from graft.strategies.advisor import SAMPLE_PER_CLASS, knn_accuracy, separability
from graft.strategies.auto import MIN_EPOCHS, Option
from graft.strategies.cuts import TIMINGS, Cut, Suffix, find_cut
from graft.strategies.groups import LayerGroup
from graft.strategies.probe import Probe, solve_head, solve_ridge_head, solve_sigmoid_head
from graft.strategies.stages import Stage, Staging
from graft.tasks import Task
from graft.training import distributed
from graft.training.build import ModelOnData
from graft.training.optim import create_optimizer


@dataclass
class FrozenPass:
    """The recorded activations: "TAP/train_x", "TAP/val_x" per tap, "train_y", "val_y"."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    hit: bool = False
    seconds: float = 0.0  # this pass (a cache hit: loading)

    @property
    def compute_seconds(self) -> float:
        """What computing the pass costs on this machine, also when it was loaded from the cache."""
        stored = self.tensors.get("seconds")
        return float(stored[0]) if stored is not None else self.seconds

    def has(self, tap: str, split: str = "train") -> bool:
        return f"{tap}/{split}_x" in self.tensors

    def loaders(self, taps: list[str], make_loader: Callable[..., DataLoader]):
        return tap_loaders(self.tensors, [t for t in taps if self.has(t, "val")], make_loader)


def cut_tap(cut: Cut) -> str:
    return f"cut:{cut.output}"


def record_frozen(
    cfg: Config, spec: DataSpec, md: ModelOnData, head: nn.Module | None, cuts: list[Cut],
    val_only: frozenset[str] = frozenset(), extra: dict[str, Tap] | None = None,
) -> FrozenPass:  # fmt: skip
    """One pass recording the head's input (when `head` is a Linear), each cut's output and the `extra`
    taps (the label check's token mean); taps named in `val_only` ("head", "cut:MODULE") on the validation
    split alone."""
    taps: dict[str, Tap] = dict(extra or {})
    if head is not None:
        taps["head"] = (head, "input")
    for cut in cuts:
        taps[cut_tap(cut)] = (md.model.get_submodule(cut.output), "output")
    if not taps:
        return FrozenPass()
    started = time.perf_counter()
    with distributed.feature_cache_turns():  # rank 0 computes and stores; the others then load
        tensors, hit = cached_tensors(
            md.model, head, taps, md.built.arch, md.built.data_config, spec.train, spec.val, md.eval_loader,
            FeatureCache(cfg.data.cache_dir or default_cache_dir()), md.device, md.amp_dtype, val_only & set(taps),
        )  # fmt: skip
    return FrozenPass(tensors, hit, time.perf_counter() - started)


# auto records the cuts whose suffix (what trains from them) costs at most this share of a forward pass.
# Deeper ones could not train 5 epochs in the default budget anyway (about 2x the frozen pass's time,
# and a training epoch costs about 3x the suffix's forward pass), and their activations are the largest
# (on EfficientNet-Lite0 at 224 px the cuts below blocks.2 alone take 1.5 GB for 600 images); with a larger
# --time-limit, those options train from the inputs instead.
CUT_SHARE = 0.3


def candidate_cuts(
    groups: list[LayerGroup], md: ModelOnData, spec: DataSpec, max_gb: float
) -> dict[int, Cut]:
    """For auto: per number of top backbone groups k (1, 2, ...), the verified cut below them, while the
    suffix from it costs at most CUT_SHARE of a forward pass and the activations of every sample fit in
    `max_gb` together."""
    inputs = sample_inputs(md, spec)
    with torch.inference_mode():
        md.model.eval()
        md.model(inputs)  # warm-up: the first call pays one-off costs
        forward = math.inf
        for _ in range(TIMINGS):
            started = time.perf_counter()
            md.model(inputs)
            forward = min(forward, time.perf_counter() - started)
    budget, found = max_gb * 2**30, {}
    samples, tokens = len(spec.train) + len(spec.val), token_count(md, spec)
    backbone = len(groups) - 1
    for k in range(1, backbone + 1):
        trainable = {n for g in groups[backbone - k :] for n in g.param_names}
        cut = find_cut(md.model, trainable, inputs)
        if cut is None:
            continue
        budget -= cut.sample_bytes * (tokens if cut.per_token else samples)
        if budget < 0 or cut.replay_seconds > CUT_SHARE * forward:
            break
        found[k] = cut
    return found


def _mean_tokens(md: ModelOnData) -> float:
    lengths = md.train_loader.dataset.dataset.tokens.lengths()  # Keyed(TextDataset)
    return sum(lengths) / max(1, len(lengths))


TEXT_SAMPLES = 16


def sample_inputs(md: ModelOnData, spec: DataSpec) -> torch.Tensor | dict[str, torch.Tensor]:
    """A few un-augmented training images (or a batch of texts) to find and verify cuts on."""
    if spec.modality == "text":
        # 16 texts, not 4: on 4 short texts the suffix's fixed per-call cost decided whether a cut was
        # "cheap" (goemotions' and imdb_rating's cut below the last layer came and went between runs).
        inputs, _ = next(iter(md.eval_loader(spec.train[:TEXT_SAMPLES])))
        return to_device(inputs, md.device)
    sample = md.eval_loader(spec.train[:4]).dataset  # indexed directly: no DataLoader workers to start
    return torch.stack([sample[i][0] for i in range(len(sample))]).to(md.device)


def token_count(md: ModelOnData, spec: DataSpec) -> int:
    """Texts: tokens over both splits (what per-token activations take room for); images: 0."""
    if spec.modality != "text":
        return 0
    return round((len(spec.train) + len(spec.val)) * _mean_tokens(md))


@dataclass
class ProbeResult:
    probe: Probe
    record: dict[str, float]  # the history row of "epoch 0"
    outputs: EvalOutputs  # per validation sample (logits too: calibration), for the logs' gallery
    knn_separability: float | None  # the advisor's measure, on the same features (free here)


def solve_probe(
    frozen: FrozenPass,
    task: Task,
    num_classes: int,
    class_weights: torch.Tensor | None,
    seed: int,
    started: float,
) -> ProbeResult:
    """The head solved on the training features as the task's convex problem (softmax, a logistic per
    label, or ridge: strategies/probe.py), scored on the validation features with the same metrics the
    loop reports for an epoch; `started` is when the frozen pass began (the record's time)."""
    x, y = frozen.tensors["head/train_x"], frozen.tensors["train_y"]
    vx, vy = frozen.tensors["head/val_x"], frozen.tensors["val_y"]
    # One solution for every rank: LBFGS is deterministic, but a GPU's reductions need not be.
    with status(f"probe  solving the head on {len(y)} frozen feature rows (cross-validated)"):
        if task.name == "multi-label":
            solved = solve_sigmoid_head(x, y, class_weights, seed=seed)
        elif task.name == "regression":
            solved = solve_ridge_head(x, y)
        else:
            solved = solve_head(x, y, num_classes, class_weights, seed=seed)
    probe = distributed.broadcast(solved)
    logits = probe.logits(vx)
    preds, confidence = task.predictions(logits)
    seconds = time.perf_counter() - started
    record = {
        "epoch": 0,
        "step": 0,
        "train_loss": probe.train_loss,
        **task.metrics(logits, vy),
        "lr": 0.0,
        "epoch_time": seconds,
        "samples_per_s": len(y) / max(seconds, 1e-9),
        "wall_time": time.time(),
    }
    knn = None
    if task.name == "single-label" and len(y) > 2:  # the advisor's sample size, from the cached features
        rows = _balanced_rows(y, SAMPLE_PER_CLASS, seed)
        knn = separability(knn_accuracy(x[rows], y[rows]), num_classes)
    return ProbeResult(
        probe, record, EvalOutputs(task.sample_losses(logits, vy), preds, vy, confidence, logits), knn
    )


def _balanced_rows(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        rows.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(rows).sort().values


def set_head(head: nn.Linear, probe: Probe) -> None:
    with torch.no_grad():
        head.weight.copy_(probe.weight.to(head.weight))
        if head.bias is not None:
            head.bias.copy_(probe.bias.to(head.bias))


@torch.no_grad()
def measure_options(
    cfg: Config,
    spec: DataSpec,
    md: ModelOnData,
    groups: list[LayerGroup],
    cuts: dict[int, Cut],
    frozen: FrozenPass,
    budget_s: float,
    max_epochs: int,
) -> list[Option]:
    """Seconds per epoch of training the top k groups, k = 1, 2, ...: a few real optimizer steps on a copy
    of the model, from k's cut (or from the inputs where there is none), plus its validation forward
    passes. Stops at the first k whose epochs would not fit the budget (deeper ones cost more)."""
    rng = torch.get_rng_state()  # dropout draws while timing must not shift the run's random stream
    model = copy.deepcopy(md.model)
    backbone, batch = len(groups) - 1, cfg.train.batch_size
    train_batches = math.ceil(len(spec.train) / batch / cfg.train.accum_steps) * cfg.train.accum_steps
    val_batches = math.ceil(len(spec.val) / batch)
    deepest_cut = max(cuts, default=0)
    options = []
    with status("auto   timing fine-tuning options") as timing:
        try:
            for k in range(1, backbone + 1):
                cut = cuts.get(k)
                if (
                    cut is None and k < deepest_cut
                ):  # a deeper option starts from a cut: cheaper, and adapts more
                    continue
                trainable = tuple(range(backbone - k, backbone + 1))
                timing.describe(f"auto   timing fine-tuning options: the top {k} of {backbone} groups")
                if cut is not None:
                    x = _typical_batch(frozen, cut_tap(cut), batch, md.device)
                    net, start = Suffix(model, cut), f"after {cut.output}"
                else:
                    # From the inputs an epoch costs at least the frozen pass's forward over the training set plus
                    # what the deepest option from a cut runs above it (the same layers, forward and backward):
                    # when even that cannot fit, neither this option nor any deeper one can. Timing it anyway
                    # costs full training steps (on the flowers set, 2 cores: a 24 s run took 30 s with it).
                    at_least = (
                        frozen.compute_seconds * len(spec.train) / max(1, len(spec.train) + len(spec.val))
                    )
                    at_least += options[-1].seconds_per_epoch if options else 0.0
                    if at_least * min(MIN_EPOCHS, max(1, max_epochs)) > budget_s:
                        break
                    x, net, start = _typical_input_batch(md), model, "from the inputs"
                targets = frozen.tensors["train_y"][: _rows(x)].to(md.device)
                step, forward = _time_steps(model, net, groups, trainable, x, targets, cfg, md, spec.task)
                step, forward = (
                    step * _length_scale(frozen, "train", x, batch),
                    forward * _length_scale(frozen, "val", x, batch),
                )
                seconds = train_batches * step + val_batches * forward
                options.append(Option(k, seconds, start, val_batches * forward))
                if seconds * min(MIN_EPOCHS, max(1, max_epochs)) > budget_s:
                    break
        finally:
            torch.set_rng_state(rng)
    return options


def _typical_batch(frozen: FrozenPass, tap: str, batch: int, device: torch.device):
    """A training batch of stored activations; texts: the `batch` texts around the median length (a
    batch of the bucketed order is about that long)."""
    x = frozen.tensors[f"{tap}/train_x"]
    lengths = frozen.tensors.get(f"{tap}/train_len")
    if lengths is None:
        return x[:batch].to(device)
    middle = torch.argsort(lengths)[max(0, len(lengths) // 2 - batch // 2) :][:batch].tolist()
    data = HiddenStates(x, lengths, frozen.tensors["train_y"])
    return to_device(pad_hidden([data[i] for i in middle])[0], device)


def _length_scale(frozen: FrozenPass, split: str, x, batch: int) -> float:
    """Texts: how much longer the split's batches are, on average, than the timed batch `x` (batches of
    similar lengths, as bucketing and sorted validation make them; a step's cost grows with its padded
    length). Timing only the median batch put MiniLM's epoch on IMDB at 21-25 s; it took 17.7 s. Images: 1."""
    lengths = next((t for key, t in frozen.tensors.items() if key.endswith(f"/{split}_len")), None)
    if lengths is None or not isinstance(x, dict):
        return 1.0
    ordered = torch.sort(lengths.long()).values
    padded = torch.stack([chunk.max() for chunk in torch.split(ordered, batch)]).double()
    return float(padded.mean()) / max(1, x["attention_mask"].shape[1])


def _typical_input_batch(md: ModelOnData):
    """A batch of un-augmented inputs as the loader makes them (texts: the middle batch by length)."""
    batches = len(md.val_loader)
    for i, (x, _) in enumerate(md.val_loader):
        if i >= (batches // 2 if isinstance(x, dict) else 0):
            return to_device(x, md.device)
    raise AssertionError("an empty validation loader")


def _rows(x) -> int:
    return len(x["attention_mask"]) if isinstance(x, dict) else len(x)


def _time_steps(
    model: nn.Module,
    net: nn.Module,
    groups: list[LayerGroup],
    trainable: tuple[int, ...],
    x,
    targets: torch.Tensor,
    cfg: Config,
    md: ModelOnData,
    task: Task,
    repeats: int = 2,
) -> tuple[float, float]:
    """(seconds per optimizer step, seconds per forward pass in eval mode) on batch `x`: the fastest of
    `repeats` after one warm-up, as the real loop takes them (autocast, AdamW over the trainable groups)."""
    stage = Stage(0, 0, trainable, tuple(1.0 for _ in trainable))
    staging = Staging(model, groups=groups, stages=[stage], make_optimizer=lambda g: create_optimizer(cfg.optim, g),
                      base_lr=1e-4, weight_decay=cfg.optim.weight_decay, train_bn=cfg.strategy.train_bn)  # fmt: skip
    optimizer = staging.build(0)
    steps, forwards = [], []
    for i in range(repeats + 1):
        staging.train_mode(model)
        started = time.perf_counter()
        with torch.enable_grad():
            with autocast(md.device, md.amp_dtype):
                logits = net(x)
            task.loss(logits.float(), targets[: len(logits)]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(md.device)
        middle = time.perf_counter()
        model.eval()
        with torch.inference_mode(), autocast(md.device, md.amp_dtype):
            net(x)
        _sync(md.device)
        if i:  # the first round warms up allocators and kernels
            steps.append(middle - started)
            forwards.append(time.perf_counter() - middle)
    for param in model.parameters():
        param.requires_grad_(True)
    return min(steps), min(forwards)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
