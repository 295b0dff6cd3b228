"""Text: tokenize-and-train throughput with dynamic padding vs padding every batch to max_length.

    python benchmarks/text_padding.py            # 240 of the text demo's drug reviews, MiniLM-L6, 1 epoch each
    python benchmarks/text_padding.py --quick    # 96 reviews, max_length 64: checks that it runs

Same data (the first 240 training reviews of the UCI Drug Review subset; --limit 600 for all), model (MiniLM-L6 from its PyPI package),
batch size, seed and threads, back to back in one process: full fine-tuning for one epoch with
(1) batches padded to max_length (what a fixed-shape pipeline does), (2) graft's default dynamic padding
(each batch padded to its longest text), (3) dynamic padding plus length-bucketed batches. Training
throughput is samples/s over the epoch's training steps; tokenization is timed separately, uncached.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RUNS = (
    ("padded to max_length", {"data.pad_to_max_length": True}),
    ("dynamic (default)", {}),
    ("dynamic + length buckets", {"data.bucket_by_length": True}),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--limit", type=int, default=240, help="training reviews used (600 in all)")
    args = parser.parse_args()
    import graft
    from graft.data.discover import discover
    from graft.data.tokens import tokenize
    from graft.demos.texts import build_drug_reviews
    from graft.models.text_encoder import build_text

    work = Path(tempfile.mkdtemp(prefix="graft-text-bench-"))
    data = build_drug_reviews(work / "drug-reviews")
    max_length = 64 if args.quick else args.max_length
    limit = 96 if args.quick else args.limit
    if limit < 600:  # a slice of both files: a CPU epoch of MiniLM at 256 tokens is ~3 reviews/s
        for name, keep in (("train.csv", limit), ("val.csv", 32)):
            rows = list(csv.reader((data / name).open(encoding="utf-8")))
            with (data / name).open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows[: keep + 1])
    spec = discover(data)
    _, tokenizer = build_text("minilm", len(spec.classes), spec.classes)
    started = time.perf_counter()
    tokens = tokenize(spec.train, tokenizer, max_length)  # no cache: the real cost
    tokenize_s = time.perf_counter() - started
    lengths = tokens.lengths()
    print(
        f"# text padding, {len(spec.train)} training texts, max_length {max_length}, {time.strftime('%Y-%m-%d')}"
    )
    print(f"tokenize: {tokenize_s:.2f}s for {len(spec.train)} texts ({len(spec.train) / tokenize_s:,.0f} texts/s), "
          f"{tokens.truncated} truncated; tokens per text: median {statistics.median(lengths):.0f}, "
          f"max {max(lengths)}")  # fmt: skip
    base = {
        "model": "minilm",
        "strategy": "full",
        "epochs": 1,
        "batch_size": 16,
        "lr": 1e-4,
        "max_length": max_length,
        "quiet": True,
        "log": "none",
        "log.histogram_every_n_steps": 0,
        "log.images": 0,
        "data.cache_dir": str(work / "cache"),
        "data.balance": "none",
    }  # fmt: skip  (a weighted sampler would change which texts share a batch)
    silent = Console(file=io.StringIO())  # the table below is the output
    print(f"{'batches':<28} {'samples/s':>10} {'epoch s':>8} {'vs max_length':>14}")
    baseline = None
    for i, (label, extra) in enumerate(RUNS):
        run = graft.train(data, out=work / f"run{i}", console=silent, **base, **extra)
        rate = run.history[0]["samples_per_s"]
        baseline = baseline or rate
        print(f"{label:<28} {rate:>10.1f} {run.history[0]['epoch_time']:>8.1f} {rate / baseline:>13.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
