"""Frozen-backbone features, computed once and reused.

While only the head trains, every epoch pushes the same images through the same frozen backbone. With
augmentation off the result is the same every time, so graft computes the head's inputs once, stores
them, and trains the head on the stored tensors: an epoch then costs a matrix multiply. The same pass
also records the activations at each gradual stage's cut (strategies/cuts.py), so a stage that trains
only the top blocks starts from there instead of from the images.

The cache key covers everything the features depend on, so a stale entry is never used: the frozen
weights (a hash of every tensor but the head's), the architecture, the preprocessing, which activations
are recorded, and each file's path, size and modification time, in split order. Entries are safetensors
files under the cache folder (`data.cache_dir`, default ~/.cache/graft/features), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from graft.data.discover import Sample
from graft.training.runtime import autocast, to_device

CACHE_FORMAT = 2  # 2: several taps per entry


def default_cache_dir() -> Path:
    return Path(os.environ.get("GRAFT_CACHE_DIR") or Path.home() / ".cache" / "graft")


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


# What to record in one pass: a module and whether its input (True: the head's features) or its output
# (False: the activation at a cut) is wanted.
Tap = tuple[nn.Module, bool]


@torch.inference_mode()
def extract(
    model: nn.Module,
    taps: dict[str, Tap],
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per tap, its (N, ...) float32 activations on every sample of `loader`, and the (N,) labels; one
    pass with the model in eval mode."""
    captured: dict[str, list[torch.Tensor]] = {key: [] for key in taps}
    hooks = []
    for key, (module, wants_input) in taps.items():
        keep = captured[key].append
        if wants_input:
            hooks.append(
                module.register_forward_pre_hook(lambda _m, args, keep=keep: keep(args[0].float().cpu()))
            )
        else:
            hooks.append(
                module.register_forward_hook(lambda _m, _args, out, keep=keep: keep(out.float().cpu()))
            )
    was_training = model.training
    model.eval()
    labels = []
    try:
        for images, targets in loader:
            with autocast(device, amp_dtype):
                model(to_device(images, device))
            labels.append(targets)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {key: torch.cat(parts) for key, parts in captured.items()}, torch.cat(labels)


def extract_features(
    model: nn.Module, head: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) inputs of `head` and (N,) labels for every sample of `loader`, model in eval mode."""
    features, labels = extract(model, {"head": (head, True)}, loader, device, amp_dtype)
    return features["head"], labels


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
        tmp = self.path(key).with_suffix(f".tmp-{os.getpid()}")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, self.path(key))


def cached_loaders(
    model: nn.Module,
    head: nn.Module | None,  # its weights do not shape any tap: left out of the key
    taps: dict[str, Tap],
    arch: str,
    data_config: dict,
    train: list[Sample],
    val: list[Sample],
    eval_loader: Callable[[list[Sample]], DataLoader],
    make_loader: Callable[[Dataset, bool], DataLoader],
    cache: FeatureCache,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> tuple[dict[str, tuple[DataLoader, DataLoader]], bool]:
    """Per tap, (train, val) loaders of its recorded activations, from the cache or computed now (one pass
    over each split for all taps); True on a cache hit."""
    splits = {"train": train, "val": val}
    key = feature_key(model, _head_param_keys(model, head), arch, data_config, splits, tuple(taps))
    tensors = cache.get(key)
    hit = tensors is not None
    if tensors is None:
        tensors = {}
        for split, samples in splits.items():
            recorded, labels = extract(model, taps, eval_loader(samples), device, amp_dtype)
            tensors |= {f"{tap}/{split}_x": x for tap, x in recorded.items()} | {f"{split}_y": labels}
        cache.put(key, tensors)
    return {
        tap: (
            make_loader(TensorDataset(tensors[f"{tap}/train_x"], tensors["train_y"]), True),
            make_loader(TensorDataset(tensors[f"{tap}/val_x"], tensors["val_y"]), False),
        )
        for tap in taps
    }, hit


def _head_param_keys(model: nn.Module, head: nn.Module | None) -> set[str]:
    if head is None:
        return set()
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {f"{prefix}.{name}" for name, _ in head.named_parameters()}
