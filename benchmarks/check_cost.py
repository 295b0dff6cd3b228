"""What the data check costs before a run (`graft check`, and the first block of `graft train`).

    python benchmarks/check_cost.py            # the demo's digits, and the same files copied 4x larger

Every file is read and fully decoded once (truncation only shows when the pixels are read), hashed with
SHA-256 and perceptually hashed; then leaks are searched train x val. Timed twice, the second time with
the files in the OS page cache (the usual case: `graft check` then `graft train`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from PIL import Image

    from graft.data.check import check_data
    from graft.data.discover import discover
    from graft.demos.images import build_digits_folder

    work = Path(tempfile.mkdtemp(prefix="graft-check-"))
    digits = build_digits_folder(work / "digits")
    large = work / "digits-256px"
    for path in sorted(digits.rglob("*.png")):  # the same images at 256 px: decode cost grows with pixels
        target = large / path.relative_to(digits)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize((256, 256)).save(target.with_suffix(".jpg"), quality=90)
    print(f"# data check cost, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
    print(f"{'data':<28} {'files':>6} {'first s':>8} {'again s':>8} {'ms/file':>8}")
    for name, folder in (("digits (png)", digits), ("digits at 256 px (jpg)", large)):
        spec = discover(folder)
        times = []
        for _ in range(2):
            started = time.perf_counter()
            report = check_data(spec)
            times.append(time.perf_counter() - started)
        n = len(spec.train) + len(spec.val)
        print(f"{name:<28} {n:>6} {times[0]:>8.2f} {times[1]:>8.2f} {1000 * times[1] / n:>8.2f}"
              f"   leaks {len(report.leaks)}")  # fmt: skip


if __name__ == "__main__":
    main()
