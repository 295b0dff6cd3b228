"""Train/validation leaks: the same sample (or nearly the same) on both sides of the split.

A validation image that is a copy, a re-save or a resize of a training image measures memory, not
generalisation; scraped and augmented-by-hand datasets are full of them. Two kinds are found:
  exact  identical bytes (SHA-256 of the file) or, for text, the identical text
  near   images whose perceptual hash (imagehash.phash: 64 bits from the low DCT frequencies) differ in at
         most `max_distance` bits (re-encoded and resized copies stay within 2); texts
         equal after normalisation (case, Unicode form, punctuation, whitespace)
The same two tests, applied to every pair of samples, group copies inside the data into clusters
(`duplicate_clusters`, `text_clusters`: the label check lists them beside the labels it doubts).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

# Resized and JPEG re-saved copies measured 0-2 bits apart (photos and noise images, 16-200 px, quality
# 70-95); unrelated photos ~32 (half of 64 random bits). At 4, 21 of the 1797 8x8 scikit-learn digits
# matched a different handwritten sample of the same digit: too loose for tiny images.
NEAR_DISTANCE = 2


@dataclass(frozen=True)
class Leak:
    train: str  # the training sample (path, or the text)
    val: str
    kind: str  # "exact" or "near"
    distance: int = 0  # phash bits that differ (near images)


def image_leaks(
    train: list[tuple[str, str, int | None]],
    val: list[tuple[str, str, int | None]],
    max_distance: int = NEAR_DISTANCE,
) -> list[Leak]:
    """Leaks between (name, sha256, phash as int or None) rows of training and validation images;
    one per validation image (its closest training image), exact before near."""
    by_hash = {sha: name for name, sha, _ in train}
    leaks, rest = [], []
    for name, sha, phash in val:
        if sha in by_hash:
            leaks.append(Leak(by_hash[sha], name, "exact"))
        elif phash is not None:
            rest.append((name, phash))
    hashed = [(name, phash) for name, _, phash in train if phash is not None]
    if not rest or not hashed:
        return leaks
    train_bits = _bits([h for _, h in hashed])  # (n_train, 64) bool
    for start in range(0, len(rest), 256):  # chunks bound memory at 256 x n_train x 64 booleans
        chunk = rest[start : start + 256]
        distances = (_bits([h for _, h in chunk])[:, None, :] != train_bits[None, :, :]).sum(-1)
        for (name, _), row in zip(chunk, distances):
            closest = int(row.argmin())
            if row[closest] <= max_distance:
                leaks.append(Leak(hashed[closest][0], name, "near", int(row[closest])))
    return leaks


def text_leaks(train: list[str], val: list[str]) -> list[Leak]:
    """Validation texts equal to a training text (exact) or equal after normalisation (near)."""
    exact = set(train)
    normalized = {normalize_text(t): t for t in train}
    leaks = []
    for text in val:
        if text in exact:
            leaks.append(Leak(text, text, "exact"))
        elif (match := normalized.get(normalize_text(text))) is not None:
            leaks.append(Leak(match, text, "near"))
    return leaks


def normalize_text(text: str) -> str:
    """'Great  movie!!' and 'great movie' are the same sample to a classifier."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def duplicates_within(keys: list[str]) -> int:
    """How many entries repeat an earlier one (exact duplicates inside one split)."""
    return len(keys) - len(set(keys))


def duplicate_clusters(
    rows: list[tuple[str, str, int | None]], max_distance: int = NEAR_DISTANCE
) -> list[list[str]]:
    """Groups of 2 or more images among (name, sha256, phash) rows that are copies of each other: the same
    bytes, or perceptual hashes at most `max_distance` bits apart, joined transitively; largest first."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving: the chains stay short
            i = parent[i]
        return i

    first_of: dict[str, int] = {}
    for i, (_, sha, _) in enumerate(rows):
        parent[root(i)] = root(first_of.setdefault(sha, i))
    hashed = [i for i, (_, _, phash) in enumerate(rows) if phash is not None]
    if len(hashed) > 1:
        bits = _bits([rows[i][2] for i in hashed])  # (n, 64) bool
        for start in range(0, len(hashed), 256):  # chunks bound memory at 256 x n x 64 booleans
            distances = (bits[start : start + 256, None, :] != bits[None, :, :]).sum(-1)
            for a, b in zip(*np.nonzero(distances <= max_distance)):
                if start + a < b:
                    parent[root(hashed[start + a])] = root(hashed[b])
    return _groups([name for name, _, _ in rows], [root(i) for i in range(len(rows))])


def text_clusters(texts: list[str]) -> list[list[str]]:
    """Groups of 2 or more texts equal after `normalize_text`; largest first."""
    return _groups(texts, [normalize_text(t) for t in texts])


def _groups(names: list[str], keys: list) -> list[list[str]]:
    members: dict = {}
    for name, key in zip(names, keys):
        members.setdefault(key, []).append(name)
    groups = [sorted(group) for group in members.values() if len(group) > 1]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def _bits(hashes: list[int]) -> np.ndarray:
    as_bytes = np.array(hashes, dtype=np.uint64).view(np.uint8).reshape(len(hashes), 8)
    return np.unpackbits(as_bytes, axis=1).astype(bool)
