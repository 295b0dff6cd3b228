"""Frozen-backbone features, computed once and reused.

While only the head trains, every epoch pushes the same images through the same frozen backbone. With
augmentation off the result is the same every time, so graft computes the head's inputs once, stores
them, and trains the head on the stored tensors: an epoch then costs a matrix multiply.

The cache key covers everything the features depend on, so a stale entry is never used: the frozen
weights (a hash of every tensor but the head's), the architecture, the preprocessing, and each file's
path, size and modification time, in split order. Entries are safetensors files under the cache folder
(`data.cache_dir`, default ~/.cache/graft/features), written atomically.
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

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("GRAFT_CACHE_DIR") or Path.home() / ".cache" / "graft")


def feature_key(
    model: nn.Module, head_keys: set[str], arch: str, data_config: dict, splits: dict[str, list[Sample]]
) -> str:
    digest = hashlib.sha256()
    meta = {
        "format": CACHE_FORMAT,
        "arch": arch,
        "preprocessing": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
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


@torch.inference_mode()
def extract_features(
    model: nn.Module, head: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) inputs of `head` and (N,) labels for every sample of `loader`, model in eval mode."""
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0].float().cpu()))
    was_training = model.training
    model.eval()
    labels = []
    try:
        for images, targets in loader:
            with autocast(device, amp_dtype):
                model(to_device(images, device))
            labels.append(targets)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured), torch.cat(labels)


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


def cached_feature_loaders(
    model: nn.Module,
    head: nn.Module,
    arch: str,
    data_config: dict,
    train: list[Sample],
    val: list[Sample],
    eval_loader: Callable[[list[Sample]], DataLoader],
    make_loader: Callable[[Dataset, bool], DataLoader],
    cache: FeatureCache,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> tuple[DataLoader, DataLoader, bool]:
    """(train, val) loaders of the head's input features, from the cache or computed now; True on a hit."""
    key = feature_key(model, _head_param_keys(model, head), arch, data_config, {"train": train, "val": val})
    tensors = cache.get(key)
    hit = tensors is not None
    if tensors is None:
        train_x, train_y = extract_features(model, head, eval_loader(train), device, amp_dtype)
        val_x, val_y = extract_features(model, head, eval_loader(val), device, amp_dtype)
        tensors = {"train_x": train_x, "train_y": train_y, "val_x": val_x, "val_y": val_y}
        cache.put(key, tensors)
    train_data = TensorDataset(tensors["train_x"], tensors["train_y"])
    val_data = TensorDataset(tensors["val_x"], tensors["val_y"])
    return make_loader(train_data, True), make_loader(val_data, False), hit


def _head_param_keys(model: nn.Module, head: nn.Module) -> set[str]:
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {f"{prefix}.{name}" for name, _ in head.named_parameters()}
