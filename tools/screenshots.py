"""Screenshots of TensorBoard on a demo run, taken in headless Chromium (docs/img/, shown in README).

    python tools/screenshots.py [--run runs/NAME]      # default: trains a fresh 5-epoch demo run first

Needs Chromium (Debian: `apt-get update && apt-get install chromium`). TensorBoard is started on a free
localhost port with graft's own `graft board`, so this also checks that command end to end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from chromium import ROOT, demo_run, find_chromium, graft_command, screenshot
from PIL import Image

SHOTS = {
    # TensorBoard's classic dashboards (they draw without WebGL), filtered to what each picture is about.
    "tensorboard-scalars.png": "#scalars&tagFilter=Loss%7CAccuracy%7CLR%2Fhead&_ignoreYOutliers=false&_smoothingWeight=0",
    "tensorboard-images.png": "#images&tagFilter=Images&_actualSize=true",
    "tensorboard-histograms.png": "#histograms&tagFilter=Gradients%2F(head%7Cblocks.6%7Cconv_stem)",
    "tensorboard-hparams.png": "#hparams",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="an existing run folder (default: train a demo run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    chromium = find_chromium()
    run = demo_run(args.run, "screenshots")
    graft = graft_command()
    port = _free_port()
    board = subprocess.Popen(
        [graft, "board", str(run), "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        url = f"http://localhost:{port}/"
        _wait_for(url + "data/runs", run_count=1)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, fragment in SHOTS.items():
            screenshot(chromium, url + fragment, args.out / name, (1400, 1100), "--virtual-time-budget=15000")
        # The dashboard shrinks image grids to its card width; the gallery itself, at its real size:
        _shoot_image(
            chromium, url, "Images/val_worst_misclassified", args.out / "tensorboard-worst-mistakes.png"
        )
    finally:
        board.terminate()
        board.wait(timeout=30)


def _shoot_image(chromium: str, url: str, tag: str, target: Path) -> None:
    """The first image of `tag` as TensorBoard serves it, in a window of its own size."""
    run = json.loads(urllib.request.urlopen(url + "data/runs").read())[0]
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    entries = json.loads(urllib.request.urlopen(f"{url}data/plugin/images/images?{query}").read())
    source = f"{url}data/plugin/images/individualImage?{entries[0]['query']}"  # epoch 1: the most mistakes
    size = Image.open(io.BytesIO(urllib.request.urlopen(source).read())).size
    screenshot(chromium, source, target, size, "--default-background-color=ffffffff")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for(url: str, run_count: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if len(json.loads(response.read())) >= run_count:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"TensorBoard did not come up at {url}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
