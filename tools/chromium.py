"""What the screenshot tools share: find headless Chromium, photograph a page, get a demo run to show."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_chromium() -> str:
    """The browser's path, or exit with the command that installs it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        sys.exit("Chromium not found: apt-get update && apt-get install chromium")
    return found


def screenshot(chromium: str, url: str, target: Path, window: tuple[int, int], *flags: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={window[0]},{window[1]}", *flags, f"--screenshot={target}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    print(f"{target} ({target.stat().st_size // 1024} KB)")
    return target


def graft_command() -> str:
    return str(Path(sys.executable).parent / "graft")


def demo_run(run: Path | None, prefix: str) -> Path:
    """`run` as given, else a fresh demo run under runs/ (a minute on 2 cores)."""
    if run is not None:
        return run
    run = ROOT / "runs" / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    subprocess.run([graft_command(), "demo", "--out", str(run), "-q"], check=True)
    return run
