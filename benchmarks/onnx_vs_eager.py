"""CPU inference throughput: ONNX Runtime on `graft export`'s model.onnx vs eager PyTorch, same threads.

    python benchmarks/onnx_vs_eager.py            # EfficientNet-Lite0 at 64 px (the demo) and 224 px, batch 1 and 32
    python benchmarks/onnx_vs_eager.py --quick    # 64 px, batch 1 and 4, short timings: checks that it runs

Model: the demo's architecture (ImageNet EfficientNet-Lite0 from the offline weights package, a 10-class
head with seeded random weights). Eager = what `graft predict` runs: the timm module in eval mode under
torch.inference_mode, NCHW float32. ORT = the ONNX file `graft export` writes (opset 17, dynamic batch)
on the CPU provider, default graph optimizations (ORT_ENABLE_ALL). Both get the same intra-op thread
count (`--threads`, default: the CPU count); inter-op parallelism is off on both. Each cell is the median
of `--rounds` timed windows; eager and ORT windows alternate, so drift in machine speed hits both.
Preprocessing and decoding are excluded: this is the model call alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def throughput(fn: Callable[[], None], batch: int, seconds: float) -> float:
    """Images per second over one window of at least `seconds` (and at least 3 calls)."""
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return calls * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed window")
    args = parser.parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch

    from graft.exporting.formats import IMAGE_IO, write_onnx
    from graft.models.registry import create_model

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    sizes, batches = ((64,), (1, 4)) if args.quick else ((64, 224), (1, 32))
    rounds, seconds = (1, 0.2) if args.quick else (args.rounds, args.seconds)
    work = Path(tempfile.mkdtemp(prefix="graft-onnx-bench-"))
    print(f"# ONNX Runtime {ort.__version__} vs eager PyTorch {torch.__version__}, efficientnet_lite0, "
          f"{args.threads} threads, {rounds} rounds x {seconds:g}s, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    print(
        f"{'input':<8} {'batch':>5} {'eager img/s':>12} {'ORT img/s':>10} {'ORT/eager':>10} {'max |diff|':>11}"
    )
    ratios = []
    for size in sizes:
        torch.manual_seed(0)
        model = create_model("efficientnet_lite0", 10, pretrained=True, img_size=size).model.eval()
        torch.nn.init.normal_(model.get_classifier().weight, std=0.05)  # not the all-zero new head
        path = work / f"lite0-{size}.onnx"
        with torch.no_grad():
            write_onnx(model, (torch.randn(2, 3, size, size),), path, {}, IMAGE_IO)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            x = torch.randn(batch, 3, size, size)
            feed = {"input": x.numpy()}

            def eager(x=x, model=model) -> None:
                with torch.inference_mode():
                    model(x)

            def onnx(feed=feed, session=session) -> None:
                session.run(None, feed)

            with torch.inference_mode():
                diff = float(np.abs(session.run(None, feed)[0] - model(x).numpy()).max())
            results: dict[str, list[float]] = {"eager": [], "ort": []}
            for fn in (eager, onnx):
                throughput(fn, batch, seconds / 4)  # warm-up: allocators, oneDNN primitives, ORT arenas
            for _ in range(rounds):
                results["eager"].append(throughput(eager, batch, seconds))
                results["ort"].append(throughput(onnx, batch, seconds))
            e, o = statistics.median(results["eager"]), statistics.median(results["ort"])
            ratios.append(o / e)
            print(f"{size}x{size:<5} {batch:>5} {e:>12.1f} {o:>10.1f} {o / e:>9.2f}x {diff:>11.1e}")
    print(f"ORT/eager: min {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x (target >= 1.5x)")
    # Eager PyTorch's OpenMP threads spin-wait for each other: another busy process on the same cores
    # slows it far more than ORT (measured 10-20x on 2 shared cores), so say how quiet the machine was.
    print(f"load average at the end (1/5 min): {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
