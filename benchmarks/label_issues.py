"""`graft check --labels` on the shared real datasets with 5% of their training labels flipped on purpose.

    python benchmarks/label_issues.py --sets cats_vs_dogs,flowers,ag_news --json runs/labels.json
    python benchmarks/label_issues.py                  # every single- and multi-label set: slow on CPU
    python benchmarks/label_issues.py --quick          # a smoke run: tiny subsets, 1 training epoch

Per set, in one process, on the set's own train/val split (graft's discovery reads it, as `graft train` does):
1. Flip: a seeded 5% of the training samples (random.Random(seed).sample over the training rows in graft's
   order) get a wrong label. Single-label: a class drawn uniformly from the other classes. Multi-label: one
   of the labels, drawn uniformly, toggled (added when absent, removed when present; a sample may be left
   with no label, which `--task multi-label` reads as such). Validation labels are not touched. The data
   is written as two CSVs in a temporary folder, clean and flipped (path,label,split with the images'
   absolute paths in place, or text,label,split): nothing of the shared data is copied or modified.
2. The label check, timed with a cold feature cache: `graft.check(flipped.csv, labels=True, fix="drop")`.
   Precision: the flipped samples among the flagged training samples; recall: the flagged among the flipped.
   Real label errors of the original data count as false positives here (nobody knows which they are).
   Other ways, from the same cached features, for the record: a second round (every fold refit without the
   first round's flags), the plain head input as features, cleanlab's other rules, and the ranking cut at
   the number flipped.
3. Cost: the check's seconds against one epoch of graft's default fine-tuning on the same set, in the same
   process: the median `epoch_time` of run (b)'s fine-tuning epochs (epoch >= 1; none when auto chose the
   linear probe), and the check's own frozen passes (cold; photos: also of the mirror images), the first
   of which `graft train` pays too.
4. Recovery: `graft.train` with its defaults on (a) the clean CSV, then with the plan auto chose there (its
   strategy, groups and epochs) held fixed on (b) the flipped CSV and (c) the `--fix drop` CSV: auto sizes
   its plan from timings, which a shared machine's load moves (imdb with auto in all three: 1, 5 and 3
   epochs in one measurement), and the comparison is of the labels, not of the plans. The score is the
   bundled epoch's monitored metric (val_acc, or val_map for multi-label), always on the same clean
   validation split (flips touch training rows only, and `--fix` never drops validation samples).
   recovered = (c - b) / (a - b), the share of what the flips cost that dropping the flagged samples gets back.

--quick: 20 training / 10 validation images per class of flowers' first two classes and 40 / 20 texts per
class of ag_news, graft trained 1 epoch: it checks that every step runs; its numbers mean little.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks._common, run as a script

from benchmarks._common import machine  # noqa: E402
from benchmarks.real_data import DATA_ROOT, fail, kind_of  # noqa: E402

FRACTION = 0.05
QUICK = {"flowers": (2, 20, 10), "ag_news": (4, 40, 20)}  # classes, training and validation samples per class


def load_rows(folder: Path, task: str, quick: tuple[int, int, int] | None) -> tuple[list[list], str, object]:
    """(rows [item, label cell, split], modality, spec) of a set as graft's discovery reads it; items are
    absolute image paths or texts. `quick`: the first classes and samples per class only."""
    from graft.data.discover import discover

    if (folder / "train").is_dir() or not (folder / "train.csv").is_file():
        spec = discover(folder, task=task)
    else:
        spec = discover(folder / "train.csv", val=folder / "val.csv", task=task)
    rows = []
    for split in ("train", "val"):
        taken: dict = {}
        for s in getattr(spec, split):
            if quick is not None:
                classes, per_train, per_val = quick
                if s.label >= classes or taken.setdefault(s.label, 0) >= (
                    per_train if split == "train" else per_val
                ):
                    continue
                taken[s.label] += 1
            item = str(Path(s.path).resolve()) if spec.modality == "image" else s.text
            rows.append([item, s.label, split])
    return rows, spec.modality, spec


def flip(rows: list[list], spec, task: str, fraction: float, seed: int) -> set[int]:
    """Flips a seeded `fraction` of the training rows' labels in place; returns their indices."""
    rng = random.Random(seed)
    train = [i for i, r in enumerate(rows) if r[2] == "train"]
    chosen = sorted(rng.sample(train, round(fraction * len(train))))
    classes = range(len(spec.classes))
    for i in chosen:
        if task == "multi-label":
            toggled = rng.choice(classes)
            labels = set(rows[i][1])
            rows[i][1] = tuple(sorted(labels ^ {toggled}))
        else:
            rows[i][1] = rng.choice([c for c in classes if c != rows[i][1]])
    return set(chosen)


def write_csv(path: Path, rows: list[list], spec, modality: str) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path" if modality == "image" else "text", "label", "split"])
        writer.writerows([item, spec.label_text(label), split] for item, label, split in rows)
    return path


def precision_recall(flagged: set[str], flipped: set[str]) -> dict:
    hits = len(flagged & flipped)
    return {"flagged_train": len(flagged), "precision": hits / len(flagged) if flagged else None,
            "recall": hits / len(flipped) if flipped else None}  # fmt: skip


def variants(data: Path, task: str, flipped: set[str], issues) -> dict:
    """Precision and recall of other ways, from the check's cached features: a second round (every fold
    refit without the first round's flags); the plain head input as features (no mirror view for images,
    BERT's pooled [CLS] for texts); on graft's own out-of-fold probabilities, cleanlab's other rules
    (prune_by_noise_rate, its default; "both") and the ranking cut at the number of flipped samples (an
    oracle count: how good the order is, whatever the threshold)."""
    import torch

    from graft.config import resolve_config
    from graft.data.discover import discover_config
    from graft.data.label_issues import find_issues
    from graft.strategies.groups import layer_groups
    from graft.strategies.stages import head_module
    from graft.tasks import tune_thresholds
    from graft.training.build import build_on_data
    from graft.training.frozen import record_frozen
    from graft.training.out_of_fold import out_of_fold
    from graft.workflow.check import check_labels

    cfg = resolve_config(None, {"data": data, "task": task})
    spec = discover_config(cfg)
    no_clusters = SimpleNamespace(clusters=[])  # check_labels reads only the copies from the data report
    second = check_labels(cfg, spec, no_clusters, 5, None, rounds=2)
    out = {"second_round": precision_recall(second.flagged_keys("train"), flipped)}
    out["second_round"]["fold_seconds"] = second.seconds["folds"]
    md = build_on_data(cfg, spec)
    # images: a cache hit; texts: computed (the check stored the head's input with the token mean, another key)
    frozen = record_frozen(md.cfg, spec, md, head_module(md.model, layer_groups(md.model)), [])
    x = torch.cat([frozen.tensors["head/train_x"], frozen.tensors["head/val_x"]])
    y = torch.cat([frozen.tensors["train_y"], frozen.tensors["val_y"]])
    oof = out_of_fold(x, y, spec.task.name, len(spec.classes), 5, cfg.train.seed)
    thresholds = tune_thresholds(oof.logits, y) if task == "multi-label" else None
    items = [*spec.train, *spec.val]
    flagged = find_issues([s.label for s in items], oof.probs.numpy(), spec.task.name, thresholds)[0]
    out["head_input_features"] = precision_recall(
        {s.key for s, on in zip(items[: len(spec.train)], flagged) if on}, flipped
    )
    if oof.multi_label is False:
        out["head_input_features"]["oof_accuracy"] = float((oof.probs.argmax(1) == y.long()).float().mean())
    train = [s.key for s in issues.items[: len(issues.spec.train)]]
    labels = [s.label for s in issues.items]
    for rule in ("prune_by_noise_rate", "both"):
        if task == "multi-label":
            from cleanlab.multilabel_classification.filter import find_label_issues

            mask = find_label_issues(labels=[list(label) for label in labels], pred_probs=issues.probs,
                                     filter_by=rule, n_jobs=1)  # fmt: skip
        else:
            from cleanlab.filter import find_label_issues

            mask = find_label_issues(labels, issues.probs, filter_by=rule, n_jobs=1)
        out[rule] = precision_recall({k for k, on in zip(train, mask) if on}, flipped)
    worst = sorted(range(len(train)), key=lambda i: issues.quality[i])[: len(flipped)]
    out["ranked_at_flipped_count"] = precision_recall({train[i] for i in worst}, flipped)
    return out


def train_metric(data: Path, out: Path, task: str, settings: dict) -> tuple[float, object]:
    import graft

    run = graft.train(data, out=out, quiet=True, task=task, **settings)
    return float(run.best_metric), run


def one_set(name: str, folder: Path, task: str, work: Path, args, quick) -> dict:
    import graft

    rows, modality, spec = load_rows(folder, task, quick)
    clean = write_csv(work / f"{name}.clean.csv", rows, spec, modality)
    flipped_rows = [list(r) for r in rows]
    flipped_at = flip(flipped_rows, spec, task, args.fraction, args.seed)
    noisy = write_csv(work / f"{name}.flipped.csv", flipped_rows, spec, modality)
    # keys as the check's discovery makes them from the CSV: the resolved path, or the text
    flipped = {
        (str(Path(rows[i][0]).resolve()) if modality == "image" else f"{rows[i][0]}\x00") for i in flipped_at
    }
    started = time.perf_counter()
    report = graft.check(noisy, labels=True, fix="drop", task=task, out=work / f"check-{name}",
                         cleaned=work / f"{name}.cleaned.csv")  # fmt: skip
    check_seconds = time.perf_counter() - started
    issues = report.label_issues
    result = {
        "task": task, "modality": modality, "train": sum(r[2] == "train" for r in rows),
        "val": sum(r[2] == "val" for r in rows), "flipped": len(flipped), "check_seconds": check_seconds,
        "flagged": int(issues.flagged.sum()), "flagged_val": len(issues.flagged_keys("val")),
        **precision_recall(issues.flagged_keys("train"), flipped),
        "phases": issues.seconds, "oof_accuracy": issues.accuracy,
    }  # fmt: skip
    result["variants"] = variants(noisy, task, flipped, issues)
    print(f"{name}: {result['flagged_train']} training samples flagged, {len(flipped)} flipped: precision "
          f"{fmt(result['precision'])}, recall {fmt(result['recall'])} in {check_seconds:.1f}s", flush=True)  # fmt: skip
    if args.no_recovery:
        return result
    settings = {"epochs": 1} if args.quick else {}
    metrics = {}
    for what, data in (("clean", clean), ("flipped", noisy), ("fixed", report.cleaned)):
        metrics[what], run = train_metric(data, work / "runs" / f"{name}-{what}", task, settings)
        if what == "clean":  # auto's plan on the clean labels, held for the other two
            chosen = run.config
            settings = {"strategy": chosen.strategy.name, "epochs": chosen.train.epochs,
                        "strategy.train_groups": chosen.strategy.train_groups}  # fmt: skip
            result["plan"] = (f"{chosen.strategy.name}, {chosen.strategy.train_groups or 0} groups, "
                              f"{chosen.train.epochs} epochs")  # fmt: skip
        if what == "flipped":
            tuned = [h["epoch_time"] for h in run.history if h["epoch"] > 0]
            result["epoch_seconds"] = statistics.median(tuned) if tuned else None
            result["epoch0_seconds"] = next(h["epoch_time"] for h in run.history if h["epoch"] == 0)
    lost = metrics["clean"] - metrics["flipped"]
    result |= {"metric": "val_map" if task == "multi-label" else "val_acc", "clean": metrics["clean"],
               "flipped_metric": metrics["flipped"], "fixed": metrics["fixed"],
               "recovered": (metrics["fixed"] - metrics["flipped"]) / lost if lost > 0 else None}  # fmt: skip
    print(f"  {result['metric']}: clean {metrics['clean']:.4f}, flipped {metrics['flipped']:.4f}, fixed "
          f"{metrics['fixed']:.4f}; recovered {fmt(result['recovered'])} (plan: {result['plan']})", flush=True)  # fmt: skip
    return result


def fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


def print_table(results: dict) -> None:
    print(
        "\n| set | task | train | flipped | flagged train (+val) | precision | recall | check s | 1 epoch s | "
        "check / epoch | of it frozen pass s | clean | flipped | --fix drop | recovered |"
    )
    print("|---" * 15 + "|")
    for name, r in results.items():
        epoch = r.get("epoch_seconds")
        ratio = f"{r['check_seconds'] / epoch:.1f}x" if epoch else "n/a"
        print(f"| {name} | {r['task']} | {r['train']} | {r['flipped']} | {r['flagged_train']} (+{r['flagged_val']}) | "
              f"**{fmt(r['precision'])}** | **{fmt(r['recall'])}** | {r['check_seconds']:.1f} | {fmt(epoch, '.1f')} | "
              f"{ratio} | {r['phases']['frozen_pass']:.1f} | {fmt(r.get('clean'), '.4f')} | "
              f"{fmt(r.get('flipped_metric'), '.4f')} | {fmt(r.get('fixed'), '.4f')} | {fmt(r.get('recovered'))} |")  # fmt: skip
    names = ("second_round", "head_input_features", "prune_by_noise_rate", "both", "ranked_at_flipped_count")
    print("\nprecision / recall (flagged training samples) of other ways, on the same flips:\n")
    print("| set | graft: 1 round, low_self_confidence | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for name, r in results.items():
        cells = [f"{fmt(r['variants'][v]['precision'])} / {fmt(r['variants'][v]['recall'])} "
                 f"({r['variants'][v]['flagged_train']})" if v in r["variants"] else "n/a" for v in names]  # fmt: skip
        print(
            f"| {name} | {fmt(r['precision'])} / {fmt(r['recall'])} ({r['flagged_train']}) | "
            + " | ".join(cells)
            + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help="the shared benchmark data folder")
    parser.add_argument(
        "--sets", help="comma-separated folder names (default: every single- and multi-label set)"
    )
    parser.add_argument("--fraction", type=float, default=FRACTION, help="share of training labels flipped")
    parser.add_argument("--seed", type=int, default=0, help="which samples are flipped, and to what")
    parser.add_argument("--no-recovery", action="store_true", help="skip the three trainings per set")
    parser.add_argument("--json", type=Path, help="write every number to this file (for the docs)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (CSVs, checks, runs)")
    parser.add_argument("--quick", action="store_true", help="tiny subsets of flowers and ag_news, 1 epoch")
    args = parser.parse_args()
    if not args.data_root.is_dir():
        fail(f"no benchmark data at {args.data_root}; pass --data-root DIR (the folder holding flowers/...)")
    if args.quick:
        names = list(QUICK)
    elif args.sets:
        names = [n for n in args.sets.split(",") if n]
    else:
        names = sorted(d.name for d in args.data_root.iterdir() if d.is_dir())
    missing = [n for n in names if not (args.data_root / n).is_dir()]
    if missing:
        fail(f"not in {args.data_root}: {', '.join(missing)}")
    kinds = {n: kind_of(args.data_root / n)[1] for n in names}
    if not args.sets and not args.quick:
        names = [n for n in names if kinds[n] != "regression"]
    regression = [n for n in names if kinds[n] == "regression"]
    if regression:
        fail(f"{', '.join(regression)}: regression; graft check --labels finds wrong classes")
    work = Path(tempfile.mkdtemp(prefix="graft-labels-"))
    os.environ["GRAFT_CACHE_DIR"] = str(work / "cache")  # cold: the check pays for its frozen pass
    command = "python " + shlex.join(sys.argv)
    host = machine()
    print(
        f"# {host}\n# {command}\n# {args.fraction:.0%} of the training labels flipped, seed {args.seed}",
        flush=True,
    )
    results = {}
    try:
        for name in names:
            quick = QUICK[name] if args.quick else None
            results[name] = one_set(name, args.data_root / name, kinds[name], work, args, quick)
            if args.json:  # after every set: an interrupted run keeps what it measured
                args.json.write_text(json.dumps({"machine": host, "command": command, "fraction": args.fraction,
                                                 "seed": args.seed, "sets": results}, indent=2, default=str) + "\n")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
