"""A screenshot of a run's evaluation report (report/index.html) in headless Chromium, for README.

    python tools/report_screenshot.py [--run runs/NAME] [--out docs/img/report.png]

Default: trains a fresh demo run first (its report is written at the end of training). An existing run
without a report gets one from `graft eval`. Needs Chromium (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1200, 2400)  # the report's first screens: summary, curves, confusion matrix, per-class table


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(chromium: str, page: Path, target: Path, window: tuple[int, int] = WINDOW) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={window[0]},{window[1]}", f"--screenshot={target}", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="an existing run folder (default: train a demo run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report.png")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("Chromium not found: apt-get update && apt-get install chromium")
    graft = str(Path(sys.executable).parent / "graft")
    run = args.run
    if run is None:
        run = ROOT / "runs" / f"report-demo-{time.strftime('%Y%m%d-%H%M%S')}"
        subprocess.run([graft, "demo", "--out", str(run), "-q"], check=True)
    page = run / "report" / "index.html"
    if not page.is_file():
        subprocess.run([graft, "eval", str(run)], check=True)
    target = screenshot(chromium, page, args.out)
    print(f"{target} ({target.stat().st_size // 1024} KB) from {page}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
