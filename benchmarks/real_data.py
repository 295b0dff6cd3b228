"""graft with its defaults vs the recipe a practitioner writes by hand, on the shared real datasets.

    python benchmarks/real_data.py                                  # all ten sets: slow on CPU
    python benchmarks/real_data.py --datasets miml_scenes,goemotions,utkface_age,imdb_rating  # the new tasks
    python benchmarks/real_data.py --datasets flowers,ag_news --json runs/real.json
    python benchmarks/real_data.py --quick                          # a smoke run, a few minutes on 2 cores
    make bench-real                                                 # = the first line

Per dataset, in one process and on the dataset's own split (train/ and val/ folders, or train.csv and
val.csv), it runs two contenders. The task follows the CSV's label column as graft detects it: `label`
single-label, `labels` (';'-joined) multi-label, `target` regression.

- the anchor: frozen pretrained features of the same backbone graft uses by default, then scikit-learn's
  `LogisticRegression(max_iter=1000)` (default settings; max_iter is raised from 100 so that it converges).
  Images: timm `efficientnet_lite0` with no head (`num_classes=0`) and graft's offline ImageNet weights,
  timm's eval transform, batches of 32. Texts: the offline all-MiniLM-L6-v2 through plain transformers,
  exactly as its model card does it (tokenizer with padding and truncation, attention-masked mean pooling,
  L2 normalization), batches of 32 of similar length (texts sorted by length, so padding stays short);
  its truncation is the tokenizer's 512 tokens, where graft's default max_length is auto (95% of the
  training texts whole, at most 256).
  Its time runs from building the model to the predictions on val: both feature passes and the fit.
  Multi-label: the same features, `OneVsRestClassifier(LogisticRegression(max_iter=1000))`, one
  logistic regression per label with the same default C=1. Regression: the same features,
  `RidgeCV(alphas=np.logspace(-2, 6, 17))` (its L2 strength chosen by efficient leave-one-out).
- graft: `graft.train(DATA, out=RUN, quiet=True)` with no other settings, timed around the call. Its
  accuracy, macro-F1 and ECE come from the run's evaluation report (RUN/report/metrics.json); the time
  to its first usable bundle from `Run.first_bundle_seconds` and the ECE before calibration from
  RUN/model/graft.json (`calibration.val_ece_before`), each "n/a" where this graft does not record it.
  Multi-label and regression: `graft.train(DATA/train.csv, val=DATA/val.csv, ...)`, scored from the
  bundle loaded with `graft.load(RUN)` on the val inputs: its model's raw outputs (checked against
  predict_proba for multi-label), the sigmoid of the logits and the per-label thresholds
  of graft.json's task_spec for multi-label, the number itself for regression (the bundle folds the target
  scaling into its head). Each line also prints graft's monitored metric per epoch (epoch 0: the head
  solved on the frozen features), to tell the probe from the fine-tuning.

Both sides are scored the same way: accuracy, macro-F1, and ECE over 15 equal-width bins of the max
softmax probability (torchmetrics' MulticlassCalibrationError, norm="l1", as graft's report uses). Beside
them, the "ECE floor": the ECE that a perfectly calibrated model would show on the same number of validation
samples (labels drawn from the anchor's own probabilities, 200 draws): on 200-400 samples it is 1-5%, so an
ECE near it cannot be told apart from perfect calibration. Multi-label (scikit-learn): mAP, the macro
average precision over the labels with a positive in val (goemotions' val has no `pride`); micro-F1 and
subset accuracy over all labels, macro-F1 over the present ones; the anchor's at 0.5 and at per-label
thresholds picked on val by graft's own rule (tasks/multi.py tune_thresholds), as in-sample as graft's.
Regression: MAE, RMSE, R² and Spearman, in the target's units.

The data is read in place from ../shared/data/ (beside the repository; --data-root to point elsewhere) and
never copied into the repository: --quick writes its small subsets to a temporary folder. Run folders go
to a temporary folder that is removed at the end (--keep keeps it). GRAFT_CACHE_DIR is set to a fresh
folder there, so no feature cache from an earlier run helps graft.

--quick runs 12 images per class of flowers' first two classes, 40 rows per class of ag_news (texts cut
to 200 characters), 40 train / 24 val rows of miml_scenes and 60 / 30 of imdb_rating (evenly spaced rows,
texts cut to 200 characters), with graft at epochs=1: it checks that everything runs and prints the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks._common, run as a script

from benchmarks._common import machine  # noqa: E402
from benchmarks.anchors import anchor, multi_label_scores, regression_scores, table_split  # noqa: E402
from benchmarks.real_tables import fmt, print_multi_label_table, print_regression_table, print_table  # noqa: E402

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATASETS = (
    "cats_vs_dogs,flowers,brain_mri,dtd_textures,ag_news,imdb,miml_scenes,goemotions,utkface_age,imdb_rating"
)
QUICK_DATASETS = ("flowers", "ag_news", "miml_scenes", "imdb_rating")
TASKS = {"label": "single-label", "labels": "multi-label", "target": "regression"}  # the CSV's label column


def kind_of(folder: Path) -> tuple[str, str]:
    """(modality, task) of a dataset: ('image', 'single-label') for train/<class>/ folders; for train.csv and
    val.csv, the modality from a `path` or `text` column and the task from `label`, `labels` (';'-joined) or
    `target`. Anything else is refused."""
    if (folder / "train").is_dir():
        return "image", "single-label"
    if (folder / "train.csv").is_file():
        with (folder / "train.csv").open(encoding="utf-8") as f:
            columns = set(next(csv.reader(f), []))
        modality = "image" if "path" in columns else "text" if "text" in columns else None
        task = next((TASKS[c] for c in TASKS if c in columns), None)
        if modality and task and (task == "single-label" or (folder / "val.csv").is_file()):
            return modality, task
    fail(
        f"{folder}: not an ImageFolder (train/<class>/) nor a train.csv with path or text and label, labels or target"
    )


def fail(message: str) -> NoReturn:
    """A usage error (missing data, unsupported dataset): one line on stderr, exit code 2."""
    print(message, file=sys.stderr)
    sys.exit(2)


def bundle_outputs(run_dir: Path, inputs: list, modality: str) -> tuple[np.ndarray, list[str], bool]:
    """The run's bundle, loaded as a user loads it (`graft.load`), on `inputs`: its raw outputs (N, outputs)
    (multi-label logits; regression: the number itself, the bundle folds the target scaling into its head),
    its classes, and for multi-label whether its predict_proba is the sigmoid of those outputs (graft's
    own decoding agreeing with what the script scores)."""
    from PIL import Image

    import graft

    predictor = graft.load(run_dir, device="cpu")
    order = sorted(range(len(inputs)), key=lambda i: len(str(inputs[i])))  # texts: short padding per batch
    outputs: list[np.ndarray | None] = [None] * len(inputs)
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            chunk = order[start : start + 32]
            if modality == "text":
                batch = predictor.logits([inputs[i] for i in chunk])  # (B, outputs)
            else:
                images = torch.stack(
                    [predictor.transform(Image.open(inputs[i]).convert("RGB")) for i in chunk]
                )
                batch = predictor.model(images).float()  # (B, outputs)
            for i, row in zip(chunk, batch.numpy(), strict=True):
                outputs[i] = row
    stacked = np.stack(outputs)
    agrees = None
    if predictor.task == "multi-label":
        sigmoid = 1 / (1 + np.exp(-stacked[:4]))
        agrees = bool(np.allclose(np.asarray(predictor.predict_proba(inputs[:4])), sigmoid, atol=1e-4))
    return stacked, list(predictor.classes), agrees


def graft_run(data: Path, out: Path, settings: dict) -> dict[str, float | None]:
    """graft.train with its defaults (plus `settings`, empty unless --quick); metrics from its report."""
    import graft

    started = time.perf_counter()
    run = graft.train(data, out=out, quiet=True, **settings)
    seconds = time.perf_counter() - started
    report = run.path / "report" / "metrics.json"
    if not report.is_file():  # the run warns rather than fails when its evaluation fails
        raise SystemExit(
            f"{data.name}: graft wrote no {report}; see its warning above (--keep keeps the run)"
        )
    metrics = json.loads(report.read_text())
    meta = json.loads((run.bundle / "graft.json").read_text())
    return {
        **plan(run),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics["ece"],
        "ece_before_calibration": (meta.get("calibration") or {}).get("val_ece_before"),
        "first_bundle_seconds": getattr(run, "first_bundle_seconds", None),  # None on a graft without it
        "seconds": seconds,
    }


def plan(run) -> dict:
    """What auto chose on this machine, and the fine-tuning epochs' training throughput (samples/s)."""
    strategy = run.config.strategy
    tuned = [h for h in run.history if h["epoch"] > 0]
    groups = (
        f", top {strategy.train_groups} group{'s' * (strategy.train_groups > 1)}"
        if strategy.train_groups
        else ""
    )
    return {
        "plan": f"{strategy.name}{groups}, {len(tuned)} epochs, best epoch {run.best_epoch}",
        "train_samples_per_s": float(np.median([h["samples_per_s"] for h in tuned])) if tuned else None,
    }


def graft_task_run(data: Path, out: Path, settings: dict, modality: str, task: str) -> dict:
    """graft.train(DATA/train.csv, val=DATA/val.csv) with its defaults (plus `settings`) on a multi-label or
    regression set, scored from its bundle's outputs on val exactly as the anchor is scored: multi-label
    probabilities are the sigmoid of the bundle's logits, labels predicted at the per-label thresholds the
    bundle stores (graft.json task_spec, tuned on this val split: in-sample, like the anchor's "tuned" F1)."""
    import graft

    started = time.perf_counter()
    run = graft.train(data / "train.csv", val=data / "val.csv", out=out, quiet=True, **settings)
    seconds = time.perf_counter() - started
    meta = json.loads((run.bundle / "graft.json").read_text())
    labels = table_split(data / "train.csv")[2]
    x_val, y_val, _ = table_split(data / "val.csv", labels or None)
    outputs, classes, proba_agrees = bundle_outputs(run.path, x_val, modality)
    monitor = "val_map" if task == "multi-label" else "val_mae"
    result = {
        **plan(run),
        "first_bundle_seconds": getattr(run, "first_bundle_seconds", None),
        "seconds": seconds,
        # the monitored metric per epoch as graft logged it (epoch 0: the solved head on frozen features)
        "history": {int(h["epoch"]): h.get(monitor) for h in run.history},
        "best_epoch": run.best_epoch,
        "bundle_metrics": meta.get("metrics"),
        "predict_proba_is_sigmoid_of_outputs": proba_agrees,  # multi-label only
    }
    if task == "regression":
        return result | regression_scores(outputs.reshape(-1), y_val)
    missing = sorted(set(labels) - set(classes))
    assert not missing, f"{data.name}: the bundle has no output for {missing} (no training sample?)"
    order = [classes.index(name) for name in labels]  # the bundle's columns in the anchor's label order
    probs = 1 / (1 + np.exp(-outputs[:, order].astype(np.float64)))
    thresholds = np.asarray(meta["task_spec"]["thresholds"])[order]
    at_half = multi_label_scores(probs, y_val)
    return result | multi_label_scores(probs, y_val, thresholds) | {"micro_f1_at_half": at_half["micro_f1"]}


def quick_subsets(root: Path, work: Path) -> dict[str, Path]:
    """Small deterministic copies in work/ (never in the repo): 12 images per class of flowers' first two
    classes, 40 rows per class of ag_news with texts cut to 200 characters; both splits, same layout."""
    flowers = work / "quick" / "flowers"
    for split in ("train", "val"):
        for name in sorted(d.name for d in (root / "flowers" / split).iterdir() if d.is_dir())[:2]:
            (flowers / split / name).mkdir(parents=True)
            for image in sorted((root / "flowers" / split / name).glob("*.jpg"))[:12]:
                shutil.copy2(image, flowers / split / name / image.name)
    news = work / "quick" / "ag_news"
    news.mkdir(parents=True)
    for split in ("train", "val"):
        with (root / "ag_news" / f"{split}.csv").open(encoding="utf-8", newline="") as f:
            rows, taken = list(csv.DictReader(f)), {}
        with (news / f"{split}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            for row in rows:  # file order: the first 40 of each class
                if taken.setdefault(row["label"], 0) < 40:
                    taken[row["label"]] += 1
                    writer.writerow({"text": row["text"][:200], "label": row["label"]})
    return {"flowers": flowers, "ag_news": news,
            "miml_scenes": quick_table(root / "miml_scenes", work, 40, 24),
            "imdb_rating": quick_table(root / "imdb_rating", work, 60, 30)}  # fmt: skip


def quick_table(source: Path, work: Path, n_train: int, n_val: int) -> Path:
    """n rows, evenly spaced, of a train.csv / val.csv set in work/quick/NAME (texts cut to 200 characters; the
    images of the rows copied beside the CSVs, at the same relative paths; labels.txt kept)."""
    out = work / "quick" / source.name
    out.mkdir(parents=True)
    for split, n in (("train", n_train), ("val", n_val)):
        with (source / f"{split}.csv").open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows, columns = list(reader), reader.fieldnames
        rows = rows[:: max(1, len(rows) // n)][
            :n
        ]  # spread over the file: miml_scenes' rows come sorted by label
        for row in rows:
            if "path" in row:
                (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / row["path"], out / row["path"])
            else:
                row["text"] = row["text"][:200]
        with (out / f"{split}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    if (source / "labels.txt").is_file():
        shutil.copy2(source / "labels.txt", out / "labels.txt")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help="the shared benchmark data folder")
    parser.add_argument("--datasets", default=DEFAULT_DATASETS, help="comma-separated folder names")
    parser.add_argument("--json", type=Path, help="write every number to this file (for the docs)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with the run folders")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny subsets of flowers, ag_news, miml_scenes and imdb_rating (ignores --datasets), graft 1 epoch",
    )
    args = parser.parse_args()
    if not args.data_root.is_dir():
        fail(f"no benchmark data at {args.data_root}; pass --data-root DIR (the folder holding flowers/...)")
    names = list(QUICK_DATASETS) if args.quick else [n for n in args.datasets.split(",") if n]
    missing = [n for n in names if not (args.data_root / n).is_dir()]
    if missing:
        fail(f"not in {args.data_root}: {', '.join(missing)}")
    kinds = {name: kind_of(args.data_root / name) for name in names}  # refuse before any work
    work = Path(tempfile.mkdtemp(prefix="graft-real-"))
    os.environ["GRAFT_CACHE_DIR"] = str(work / "cache")  # cold: graft pays for its feature cache here
    if args.quick:
        # graft's defaults but a short fine-tune: it checks that every step runs, not how well
        datasets, settings = quick_subsets(args.data_root, work), {"epochs": 1}
    else:
        datasets, settings = {name: args.data_root / name for name in names}, {}
    # graft raises glibc's mmap/trim thresholds when its engine is imported (graft/runtime.py:
    # 2.5x faster CPU forward passes at 224 px); the anchor gets the same allocator, from the first dataset
    # on, so what is compared is the two recipes, not the allocator.
    from graft.runtime import ALLOCATOR_TUNED

    command = "python " + shlex.join(sys.argv)
    host = machine()  # once: the load average at the start, in the table and the JSON alike
    print(f"# {host}, glibc allocator thresholds raised for both: {ALLOCATOR_TUNED}\n# {command}")
    if args.quick:
        print(f"# quick: tiny subsets, graft with {settings}: checks that it runs, the numbers mean little")
    results = {}
    try:
        for name, data in datasets.items():
            modality, task = kinds[name]
            results[name] = {"kind": modality, "task": task, "anchor": anchor(data, modality, task)}
            if task == "single-label":
                results[name]["graft"] = graft_run(data, work / "runs" / name, settings)
            else:
                results[name]["graft"] = graft_task_run(data, work / "runs" / name, settings, modality, task)
            a, g = results[name]["anchor"], results[name]["graft"]
            speed = g["train_samples_per_s"]
            metric, spec = {"single-label": ("accuracy", ".2%"), "multi-label": ("map", ".2%"),
                            "regression": ("mae", ".3f")}[task]  # fmt: skip
            print(f"{name}: anchor {metric} {a[metric]:{spec}} in {a['seconds']:.1f}s, "
                  f"graft {g[metric]:{spec}} in {g['seconds']:.1f}s ({g['plan']}"
                  f"{'' if speed is None else f'; fine-tuning {speed:.0f} samples/s'})", flush=True)  # fmt: skip
            if "history" in g:
                print(f"  graft {'val_map' if metric == 'map' else 'val_mae'} per epoch (0: the solved head): "
                      + ", ".join(f"{e}: {fmt(v, '.4f')}" for e, v in g["history"].items()), flush=True)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    by_task = {task: {n: r for n, r in results.items() if r["task"] == task} for task in TASKS.values()}
    for task, printer in (("single-label", print_table), ("multi-label", print_multi_label_table),
                          ("regression", print_regression_table)):  # fmt: skip
        if by_task[task]:
            print(f"\n{task}:")
            printer(by_task[task])
    if args.json:
        deltas = [r["graft"]["accuracy"] - r["anchor"]["accuracy"] for r in by_task["single-label"].values()]
        summary = {"machine": host, "command": command, "quick": args.quick, "graft_settings": settings,
                   "datasets": results,
                   "mean_accuracy_delta_points": 100 * sum(deltas) / len(deltas) if deltas else None}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
