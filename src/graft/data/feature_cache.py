"""Frozen-backbone features, computed once and reused.

While only the head trains, every epoch pushes the same images through the same frozen backbone. With
augmentation off the result is the same every time, so graft computes the head's inputs once, stores
them, and trains the head on the stored tensors: an epoch then costs a matrix multiply. The same pass
also records the activations at each gradual stage's cut (strategies/cuts.py), so a stage that trains
only the top blocks starts from there instead of from the images.

The cache key covers everything the features depend on, so a stale entry is never used: the frozen
weights (a hash of every tensor but the head's), the architecture, the preprocessing, which activations
are recorded, and each file's path, size and modification time, in split order. Entries are safetensors
files under the cache folder (`data.cache_dir`, default data/cache_dir.py's root/features), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from graft.data.discover import Sample
from graft.data.sampler import in_dataset_order
from graft.files import write_atomic
from graft.progress import step_bar
from graft.runtime import autocast, to_device

CACHE_FORMAT = 4  # 2: several taps per entry; 3: how long computing them took; 4: texts per token


def feature_key(
    model: nn.Module,
    head_keys: set[str],
    arch: str,
    data_config: dict,
    splits: dict[str, list[Sample]],
    taps: tuple[str, ...] = ("head",),
) -> str:
    digest = hashlib.sha256()
    meta = {
        "format": CACHE_FORMAT,
        "arch": arch,
        "preprocessing": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "taps": sorted(taps),
    }
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        if name not in head_keys:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for split, samples in splits.items():
        digest.update(split.encode())
        for s in samples:
            if isinstance(s, Sample):
                stat = s.path.stat()
                digest.update(f"{s.path}|{s.label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            else:  # a text: its content is the key
                digest.update(f"{s.key}|{s.label}\n".encode())
    return digest.hexdigest()[:32]


# What to record in one pass: a module and which of its activations: "input" (the head's features),
# "output" (the activation at a cut), or "mean" (texts: the output's hidden states averaged over each
# text's tokens, padding left out: the sentence embedding of sentence-transformers, what the label check
# fits on; a model output object gives its last_hidden_state).
Tap = tuple[nn.Module, str]
TAP_KINDS = ("input", "output", "mean")


@torch.inference_mode()
def extract(
    model: nn.Module,
    taps: dict[str, Tap],
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    description: str = "cache  frozen pass",
    unit: str = "images",
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per tap, its (N, ...) float32 activations on every sample of `loader`, and the (N,) labels; one
    pass with the model in eval mode, results in dataset order, under a progress bar (`description`,
    counting `unit`).

    Texts: a tap whose output has a token axis (a transformer layer's hidden states) is stored without
    its padding: "TAP" is every text's (length, hidden) rows one after another, "TAP.len" the lengths.
    A "mean" tap is (N, hidden): each text's own rows averaged."""
    captured: dict[str, list[torch.Tensor]] = {key: [] for key in taps}
    hooks, pooled = [], [key for key, (_, kind) in taps.items() if kind == "mean"]
    for key, (module, kind) in taps.items():
        if kind not in TAP_KINDS:
            raise ValueError(f"tap {key!r}: kind {kind!r}, expected one of {', '.join(TAP_KINDS)}")
        keep = captured[key].append
        if kind == "input":
            hooks.append(
                module.register_forward_pre_hook(lambda _m, args, keep=keep: keep(args[0].float().cpu()))
            )
        else:
            hooks.append(
                module.register_forward_hook(
                    lambda _m, _args, out, keep=keep: keep(_hidden(out).float().cpu())
                )
            )
    was_training = model.training
    model.eval()
    labels, masks = [], []
    try:
        with step_bar(description, len(loader.dataset), unit) as bar:
            for inputs, targets in loader:
                with autocast(device, amp_dtype):
                    model(to_device(inputs, device))
                labels.append(targets)
                masks.append(inputs["attention_mask"] if isinstance(inputs, dict) else None)
                for key in pooled:  # (B, L, H) -> (B, H) now: the token rows are never all held
                    captured[key][-1] = _token_mean(captured[key][-1], masks[-1])
                bar.advance(len(targets))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    order = None
    if getattr(loader.sampler, "lengths", None) is not None:  # texts run sorted by length: dataset order
        order = torch.from_numpy(loader.sampler.order())
    labels = in_dataset_order(torch.cat(labels), order)
    recorded = {}
    for key, parts in captured.items():
        if masks[0] is not None and parts[0].ndim == 3:  # (B, L, H) per batch -> each text's own rows
            rows = [h[:n] for part, mask in zip(parts, masks) for h, n in zip(part, mask.sum(1).tolist())]
            if order is not None:
                rows = [rows[i] for i in torch.argsort(order).tolist()]
            recorded[key] = torch.cat(rows)
            recorded[f"{key}.len"] = torch.tensor([len(r) for r in rows])
        else:
            recorded[key] = in_dataset_order(torch.cat(parts), order)
    return recorded, labels


def extract_features(
    model: nn.Module, head: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None,
    description: str = "cache  frozen pass", unit: str = "images",
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(N, D) inputs of `head` and (N,) labels for every sample of `loader`, model in eval mode."""
    features, labels = extract(model, {"head": (head, "input")}, loader, device, amp_dtype, description, unit)
    return features["head"], labels


def _hidden(out) -> torch.Tensor:
    """A module's output as one tensor: a transformers output object's (or tuple's) hidden states."""
    if isinstance(out, torch.Tensor):
        return out
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def _token_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, L, H) hidden states -> (B, H): each text's mean over its own tokens (mask 1), padding left out."""
    if hidden.ndim != 3 or mask is None:  # e.g. a module that returns logits, or an image batch
        raise ValueError(f"a 'mean' tap averages texts' (batch, tokens, hidden) states; got {tuple(hidden.shape)}"
                         f"{'' if mask is not None else ' without an attention mask'}")  # fmt: skip
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


class FeatureCache:
    def __init__(self, root: Path):
        self.root = root / "features"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, never trusted
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(
            self.path(key), lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        )


def cached_tensors(
    model: nn.Module,
    head: nn.Module | None,  # its weights do not shape any tap: left out of the key
    taps: dict[str, Tap],
    arch: str,
    data_config: dict,
    train: list[Sample],
    val: list[Sample],
    eval_loader: Callable[[list[Sample]], DataLoader],
    cache: FeatureCache,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    val_only: frozenset[str] = frozenset(),
) -> tuple[dict[str, torch.Tensor], bool]:
    """Every tap's recorded activations ("TAP/train_x", "TAP/val_x") and the labels ("train_y", "val_y"),
    from the cache or computed now (one pass over each split for all taps); True on a cache hit. Taps in
    `val_only` are recorded on the validation split alone (their training batches are augmented).
    "seconds" (a 1-element tensor) is how long computing them took, also when they came from the cache."""
    splits = {"train": train, "val": val}
    # The kind is part of a tap's name in the key (an entry of "input"/"output" taps keeps its old key).
    names = tuple(k if kind in ("input", "output") else f"{k}~{kind}" for k, (_, kind) in taps.items())
    names += tuple(f"{t}@val" for t in sorted(val_only))
    key = feature_key(model, _head_param_keys(model, head), arch, data_config, splits, names)
    tensors = cache.get(key)
    if tensors is not None:
        return tensors, True
    started = time.perf_counter()
    tensors = {}
    # Images: one pass over both splits (one DataLoader to start, not two); texts, or taps recorded on
    # validation only: a pass per split (texts are tokenized per split already).
    images = any(isinstance(s, Sample) for s in (train or val)[:1])
    together = not val_only and train and images
    for split, samples in {"all": train + val}.items() if together else splits.items():
        wanted = {k: v for k, v in taps.items() if split != "train" or k not in val_only}
        what = "train and val" if split == "all" else split
        recorded, labels = extract(model, wanted, eval_loader(samples), device, amp_dtype,
                                   f"cache  frozen pass, {what}", "images" if images else "texts")  # fmt: skip
        parts = (
            {"train": slice(0, len(train)), "val": slice(len(train), None)}
            if together
            else {split: slice(None)}
        )
        for part_split, rows in parts.items():
            # clone(): out of inference mode, so a stage can train on them (autograd saves its inputs)
            for name, x in recorded.items():  # "TAP" -> "TAP/train_x", "TAP.len" -> "TAP/train_len"
                tap, part = (name[: -len(".len")], "len") if name.endswith(".len") else (name, "x")
                tensors[f"{tap}/{part_split}_{part}"] = x[rows].clone()
            tensors[f"{part_split}_y"] = labels[rows].clone()
    tensors["seconds"] = torch.tensor([time.perf_counter() - started], dtype=torch.float64)
    cache.put(key, tensors)
    return tensors, False


def tap_loaders(
    tensors: dict[str, torch.Tensor],
    taps: list[str],
    make_loader: Callable[[Dataset, bool, list | None], DataLoader],
) -> dict[str, tuple[DataLoader, DataLoader]]:
    """Per tap, (train, val) loaders of its recorded activations and the labels (train None for a tap
    recorded on validation only). Per-token taps (texts) give padded batches {"hidden", "attention_mask"}
    and pass each sample's length for bucketing."""
    out = {}
    for tap in taps:
        pair = []
        for split, train in (("train", True), ("val", False)):
            if f"{tap}/{split}_x" not in tensors:  # recorded for validation only
                pair.append(None)
                continue
            x, y = tensors[f"{tap}/{split}_x"], tensors[f"{split}_y"]
            lengths = tensors.get(f"{tap}/{split}_len")
            if lengths is None:
                pair.append(make_loader(TensorDataset(x, y), train, None))
            else:
                pair.append(make_loader(HiddenStates(x, lengths, y), train, lengths.tolist()))
        out[tap] = (pair[0], pair[1])
    return out


class HiddenStates(Dataset):
    """Texts' stored hidden states (every text's rows one after another) and labels; `pad_hidden` batches them."""

    def __init__(self, rows: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor):
        self.rows, self.labels = rows, labels
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.long().cumsum(0)]).tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rows[self.offsets[i] : self.offsets[i + 1]], self.labels[i]


def pad_hidden(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """collate_fn for HiddenStates: (B, L, H) zero-padded hidden states and their (B, L) attention mask."""
    length = max(len(h) for h, _ in batch)
    hidden = batch[0][0].new_zeros((len(batch), length, batch[0][0].shape[-1]))
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, (h, _) in enumerate(batch):
        hidden[row, : len(h)] = h
        mask[row, : len(h)] = 1
    return {"hidden": hidden, "attention_mask": mask}, torch.stack([y for _, y in batch])


def _head_param_keys(model: nn.Module, head: nn.Module | None) -> set[str]:
    if head is None:
        return set()
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {f"{prefix}.{name}" for name, _ in head.named_parameters()}
