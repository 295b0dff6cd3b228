"""Texts -> token ids, once per dataset; batches padded to their own longest text.

Tokenization runs once per (tokenizer, max_length, texts) and is cached as safetensors next to the feature
cache (`data.cache_dir`/tokens), so a second run or a resume starts at once. Each sample keeps only its
real tokens; `pad_batch` pads a batch to its longest member (dynamic padding), so short texts cost short
sequences. `--set data.bucket_by_length=true` additionally batches texts of similar length together
(see `ResumableSampler(lengths=...)`), which removes most of the remaining padding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from graft.data.text_tables import TextSample
from graft.files import write_atomic

TOKEN_CACHE_FORMAT = 1
# max_length auto's ceiling: the length sentence encoders such as MiniLM are trained at, and where a CPU
# epoch of a long-text set stays affordable (attention grows with the square of the length). Measured on
# IMDB reviews (median 230 tokens) with MiniLM: frozen mean-pooled features 79.6% at 256 tokens, 79.9% at
# 512, for 1.6x the time. --max-length up to the model's limit (512 for BERT-family encoders) for more.
AUTO_MAX_LENGTH = 256
COVERED = 0.95  # max_length auto covers this share of the training texts without truncation


def choose_max_length(lengths: Sequence[int], model_limit: int) -> int:
    """max_length auto: the COVERED quantile of `lengths` rounded up to a multiple of 32, within
    [32, min(model_limit, AUTO_MAX_LENGTH)].

    >>> choose_max_length([10] * 95 + [400] * 5, 512), choose_max_length([300] * 10, 512)
    (32, 256)
    """
    ordered = sorted(lengths)
    quantile = ordered[min(len(ordered) - 1, max(0, round(COVERED * len(ordered)) - 1))] if ordered else 32
    return max(32, min(model_limit, AUTO_MAX_LENGTH, -(-quantile // 32) * 32))


def token_lengths(samples: Sequence[TextSample], tokenizer) -> list[int]:
    """Each sample's token count with special tokens, untruncated (a pair counts both texts)."""
    texts = [s.text for s in samples]
    pairs = [s.pair for s in samples] if samples and samples[0].pair is not None else None
    return [len(ids) for ids in tokenizer(texts, pairs, truncation=False, verbose=False)["input_ids"]]


@dataclass
class Tokenized:
    """Every sample's token ids (and segment ids for pairs), stored flat with offsets."""

    ids: torch.Tensor  # int32, all samples concatenated
    types: torch.Tensor | None  # token_type_ids, same layout; None when the tokenizer has none
    offsets: torch.Tensor  # int64, len(samples) + 1
    truncated: int  # how many samples were longer than max_length and cut

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> list[int]:
        return (self.offsets[1:] - self.offsets[:-1]).tolist()

    def sample(self, i: int) -> dict[str, torch.Tensor]:
        start, end = self.offsets[i].item(), self.offsets[i + 1].item()
        out = {"input_ids": self.ids[start:end].long()}
        if self.types is not None:
            out["token_type_ids"] = self.types[start:end].long()
        return out


def tokenize(
    samples: Sequence[TextSample], tokenizer, max_length: int, cache_dir: Path | None = None
) -> Tokenized:
    """Token ids for `samples`, from the cache when the same tokenizer has seen the same texts."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "tokens" / f"{_key(samples, tokenizer, max_length)}.safetensors"
        if path.is_file():
            stored = load_file(str(path))
            meta = json.loads(bytes(stored.pop("meta").tolist()).decode())
            return Tokenized(stored["ids"], stored.get("types"), stored["offsets"], meta["truncated"])
    texts = [s.text for s in samples]
    pairs = [s.pair for s in samples] if samples and samples[0].pair is not None else None
    full = tokenizer(texts, pairs, truncation=False, add_special_tokens=True, verbose=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, return_token_type_ids=None)
    ids = encoded["input_ids"]
    offsets = torch.tensor([0] + [len(x) for x in ids]).cumsum(0)
    flat = torch.tensor([t for x in ids for t in x], dtype=torch.int32)
    types = None
    if "token_type_ids" in encoded:
        types = torch.tensor([t for x in encoded["token_type_ids"] for t in x], dtype=torch.int32)
    result = Tokenized(flat, types, offsets, truncated)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"ids": flat, "offsets": offsets}
        if types is not None:
            tensors["types"] = types
        tensors["meta"] = torch.tensor(list(json.dumps({"truncated": truncated}).encode()), dtype=torch.uint8)
        # Concurrent runs may race; either writer's file is complete.
        write_atomic(path, lambda tmp: save_file(tensors, str(tmp)))
    return result


def _key(samples: Sequence[TextSample], tokenizer, max_length: int) -> str:
    digest = hashlib.sha256()
    vocab = tokenizer.get_vocab()
    meta = {
        "format": TOKEN_CACHE_FORMAT,
        "tokenizer": type(tokenizer).__name__,
        "vocab": hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest(),
        "lower": getattr(tokenizer, "do_lower_case", None),
        "max_length": max_length,
    }
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for s in samples:
        digest.update(s.key.encode() + b"\x01")
    return digest.hexdigest()[:32]


class TextDataset(Dataset):
    """Tokenized samples; keys are the sampler's (epoch, index) or a plain index (text needs no per-epoch
    randomness, so the epoch is ignored)."""

    def __init__(self, tokens: Tokenized, labels: Sequence[int] | torch.Tensor):
        """`labels`: class indices, or the task's target tensor (graft/tasks/)."""
        self.tokens, self.labels = tokens, labels if isinstance(labels, torch.Tensor) else list(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[dict[str, torch.Tensor], int]:
        index = key[1] if isinstance(key, tuple) else key
        return self.tokens.sample(index), self.labels[index]


class PadBatch:
    """collate_fn: pads a batch to its longest sample (or to `pad_to`, for the fixed-length baseline)."""

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id, self.pad_to = pad_id, pad_to

    def __call__(self, batch: list[tuple[dict[str, torch.Tensor], int]]):
        length = self.pad_to or max(len(x["input_ids"]) for x, _ in batch)
        out: dict[str, torch.Tensor] = {}
        for name, fill in (("input_ids", self.pad_id), ("token_type_ids", 0)):
            if name in batch[0][0]:
                padded = torch.full((len(batch), length), fill, dtype=torch.long)
                for row, (x, _) in enumerate(batch):
                    padded[row, : len(x[name])] = x[name]
                out[name] = padded
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for row, (x, _) in enumerate(batch):
            mask[row, : len(x["input_ids"])] = 1
        out["attention_mask"] = mask
        return out, torch.stack([torch.as_tensor(y) for _, y in batch])
