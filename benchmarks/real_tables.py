"""The tables benchmarks/real_data.py prints: graft vs the anchor per dataset, one table per task."""

from __future__ import annotations


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def print_table(results: dict[str, dict]) -> None:
    header = (f"{'dataset':<13} {'acc anchor':>10} {'acc graft':>9} {'delta':>7} {'F1 anchor':>9} {'F1 graft':>8} "
              f"{'ECE anchor':>10} {'ECE graft':>9} {'(pre-cal)':>9} {'ECE floor':>9} {'anchor':>8} {'1st bundle':>10} "
              f"{'graft':>8} {'1st/anchor':>10} {'graft/anchor':>12}")  # fmt: skip
    print(header)
    rows = {}
    for name, r in results.items():
        a, g = r["anchor"], r["graft"]
        first = g["first_bundle_seconds"]
        rows[name] = [a["accuracy"], g["accuracy"], 100 * (g["accuracy"] - a["accuracy"]), a["macro_f1"],
                      g["macro_f1"], a["ece"], g["ece"], g["ece_before_calibration"], a.get("ece_floor"), a["seconds"], first,
                      g["seconds"], None if first is None else first / a["seconds"], g["seconds"] / a["seconds"]]  # fmt: skip
    if len(rows) > 1:
        rows["mean"] = [mean(column) for column in zip(*rows.values())]
    specs = [(".2%", ""), (".2%", ""), ("+.2f", ""), (".3f", ""), (".3f", ""), (".2%", ""), (".2%", ""),
             (".2%", ""), (".2%", ""), (".1f", "s"), (".1f", "s"), (".1f", "s"), (".2f", "x"), (".2f", "x")]  # fmt: skip
    widths = [10, 9, 7, 9, 8, 10, 9, 9, 9, 8, 10, 8, 10, 12]
    for name, values in rows.items():
        cells = [fmt(v, spec, suffix).rjust(w) for v, (spec, suffix), w in zip(values, specs, widths)]
        print(f"{name:<13} " + " ".join(cells))
    print(
        "delta: graft minus anchor accuracy, in points; anchor, 1st bundle, graft: wall seconds; ECE floor: the "
        "ECE of a perfectly calibrated model on this many validation samples (ece_floor)"
    )


def print_rows(header: list[tuple[str, int]], rows: dict[str, list], specs: list[tuple[str, str]]) -> None:
    print(f"{'dataset':<13} " + " ".join(title.rjust(width) for title, width in header))
    for name, values in rows.items():
        cells = [fmt(v, spec, suffix).rjust(w) for v, (spec, suffix), (_, w) in zip(values, specs, header)]
        print(f"{name:<13} " + " ".join(cells))


def print_multi_label_table(results: dict[str, dict]) -> None:
    header = [("mAP anchor", 10), ("mAP graft", 9), ("delta", 7), ("uF1 anchor", 10), ("(tuned)", 8),
              ("uF1 graft", 9), ("(at 0.5)", 8), ("anchor", 8), ("1st bundle", 10), ("graft", 8),
              ("graft/anchor", 12)]  # fmt: skip
    rows = {name: [r["anchor"]["map"], r["graft"]["map"], 100 * (r["graft"]["map"] - r["anchor"]["map"]),
                   r["anchor"]["micro_f1"], r["anchor"]["micro_f1_tuned"], r["graft"]["micro_f1"],
                   r["graft"]["micro_f1_at_half"], r["anchor"]["seconds"], r["graft"]["first_bundle_seconds"],
                   r["graft"]["seconds"], r["graft"]["seconds"] / r["anchor"]["seconds"]]
            for name, r in results.items()}  # fmt: skip
    specs = [(".2%", ""), (".2%", ""), ("+.2f", ""), (".3f", ""), (".3f", ""), (".3f", ""), (".3f", ""),
             (".1f", "s"), (".1f", "s"), (".1f", "s"), (".2f", "x")]  # fmt: skip
    print_rows(header, rows, specs)
    print("mAP: macro average precision over the labels present in val; delta in points; uF1: micro-F1, the "
          "anchor at 0.5 (tuned: per-label thresholds picked on val by graft's rule), graft at its bundle's "
          "thresholds (tuned on val) and at 0.5")  # fmt: skip


def print_regression_table(results: dict[str, dict]) -> None:
    header = [("MAE anchor", 10), ("MAE graft", 9), ("graft/anchor", 12), ("RMSE anchor", 11), ("RMSE graft", 10),
              ("R2 anchor", 9), ("R2 graft", 8), ("anchor", 8), ("1st bundle", 10), ("graft", 8),
              ("graft/anchor", 12)]  # fmt: skip
    rows = {name: [r["anchor"]["mae"], r["graft"]["mae"], r["graft"]["mae"] / r["anchor"]["mae"],
                   r["anchor"]["rmse"], r["graft"]["rmse"], r["anchor"]["r2"], r["graft"]["r2"],
                   r["anchor"]["seconds"], r["graft"]["first_bundle_seconds"], r["graft"]["seconds"],
                   r["graft"]["seconds"] / r["anchor"]["seconds"]]
            for name, r in results.items()}  # fmt: skip
    specs = [(".3f", ""), (".3f", ""), (".3f", "x"), (".3f", ""), (".3f", ""), (".3f", ""), (".3f", ""),
             (".1f", "s"), (".1f", "s"), (".1f", "s"), (".2f", "x")]  # fmt: skip
    print_rows(header, rows, specs)
    print("MAE, RMSE: in the target's units (years, stars); the first graft/anchor is the MAE ratio (< 1: graft "
          "better), the last the time ratio")  # fmt: skip
