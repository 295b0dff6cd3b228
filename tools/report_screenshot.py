"""A screenshot of a run's evaluation report (report/index.html) in headless Chromium, for README.

    python tools/report_screenshot.py [--run runs/NAME] [--out docs/img/report.png]

Default: trains a fresh demo run first (its report is written at the end of training). An existing run
without a report gets one from `graft eval`. Needs Chromium (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from chromium import ROOT, demo_run, find_chromium, graft_command, screenshot

WINDOW = (1200, 2400)  # the report's first screens: summary, curves, confusion matrix, per-class table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="an existing run folder (default: train a demo run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report.png")
    args = parser.parse_args()
    chromium = find_chromium()
    run = demo_run(args.run, "report-demo")
    page = run / "report" / "index.html"
    if not page.is_file():
        subprocess.run([graft_command(), "eval", str(run)], check=True)
    screenshot(chromium, page.resolve().as_uri(), args.out, WINDOW)


if __name__ == "__main__":
    main()
