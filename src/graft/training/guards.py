"""Failures during training turned into one actionable line: non-finite losses, out-of-memory, a
DataLoader worker that died, a run directory that cannot hold the run.

Each is a `GraftError` naming what to change; checkpoints already written are never touched (the loop
stops before the optimizer step that would have used the bad loss).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from graft.errors import WRITE_ERRNOS, GraftError, WriteFailed
from graft.runs.store import write_error_reason


def skip_nonfinite(
    loss: torch.Tensor,
    state,  # TrainState: .step, .epoch, .nonfinite (the count so far, saved in checkpoints)
    allowed: int,
    lr: float,
    loader: DataLoader,
    batch: int,  # position of this batch among the batches the loader yields this time
    note: Callable[[str], None],
) -> bool:
    """False for a finite loss. For NaN/Inf: True (skip the batch) while at most `allowed` were seen in
    the run, else raise with the step, the batch's samples and what usually causes it.

    Costs one device sync per batch: a NaN must stop the run before the optimizer step spreads it into
    the weights (and into the next checkpoint)."""
    if bool(torch.isfinite(loss)):
        return False
    state.nonfinite += 1
    where = f"step {state.step + 1} (epoch {state.epoch + 1})"
    samples = batch_samples(loader, batch)
    if state.nonfinite <= allowed:
        note(f"skipped batch with loss {loss.item()} at {where} ({state.nonfinite}/{allowed} allowed)")
        return True
    shown = ", ".join(samples[:8]) + (f" and {len(samples) - 8} more" if len(samples) > 8 else "")
    budget = f" (non-finite loss {state.nonfinite}, --skip-nonfinite {allowed})" if allowed else ""
    raise GraftError(
        f"loss is {loss.item()} at {where}{budget}, batch: {shown}; stopped, checkpoints already written are "
        f"untouched. Usual causes: LR too high (--lr {lr:g}: try a tenth), a bad input in this batch, "
        "or fp16 overflow (--amp bf16 or off); --skip-nonfinite N tolerates N such batches"
    )


def batch_samples(loader: DataLoader, batch: int) -> list[str]:
    """What the `batch`-th batch of the loader's current iteration holds: file paths for images,
    split.csv lines for texts and cached features (their order is the split's)."""
    keys = list(iter(loader.sampler))[batch * loader.batch_size : (batch + 1) * loader.batch_size]
    indices = [key[1] if isinstance(key, tuple) else int(key) for key in keys]
    samples = getattr(loader.dataset, "samples", None)
    if samples is not None and hasattr(samples[0], "path"):
        return [str(samples[i].path) for i in indices]
    return [f"split.csv line {i + 2}" for i in indices]  # +2: the header, and lines count from 1


def out_of_memory_error(batch_size: int, accum_steps: int, device: torch.device) -> GraftError:
    """The GPU ran out of memory: the batch size to try, keeping the effective batch."""
    half = max(1, batch_size // 2)
    keep = f" --accum-steps {accum_steps * 2}" if half < batch_size else ""
    return GraftError(
        f"out of GPU memory on {device} at batch size {batch_size}; try --batch-size {half}{keep} "
        "(the same effective batch), a smaller --img-size, or --amp bf16"
    )


def worker_failure_error(err: RuntimeError, datasets: Iterable[object]) -> GraftError | None:
    """A DataLoader worker process died (usually killed for memory): name the files it was decoding.
    None if `err` is not a worker failure."""
    message = str(err)
    if "DataLoader worker" not in message:
        return None
    files = []
    for dataset in datasets:
        in_flight = getattr(dataset, "in_flight", None)
        if in_flight is not None:
            files += [str(dataset.samples[i].path) for i in in_flight.tolist() if i >= 0]
    culprit = f" while decoding {', '.join(files)}" if files else ""
    return GraftError(
        f"a DataLoader worker died{culprit} ({message.splitlines()[0].strip()}); usually out of CPU "
        "memory: use fewer --num-workers, a smaller --batch-size, or check that file"
    )


def check_run_space(run_dir: Path, n_params: int, keep_top_k: int) -> None:
    """Before training: the run directory can be written, and its disk has room for the checkpoints.

    Rough need: a checkpoint holds the weights and AdamW's two moments (3 x 4 bytes per parameter);
    last, best, the top-k and one being written can coexist; plus the bundle and ~50 MB of logs."""
    parent = run_dir
    while not parent.exists():
        parent = parent.parent
    try:  # os.access says yes to root and ignores read-only mounts: try the real thing
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise GraftError(
            f"cannot write in {parent} ({err.strerror}); choose another --out (nothing was written)"
        ) from None
    need = 12 * n_params * (keep_top_k + 3) + 4 * n_params + 50 * 2**20
    free = shutil.disk_usage(parent).free
    if free < need:
        raise GraftError(
            f"not enough disk space for the run in {parent}: {free / 2**30:.2f} GiB free, about "
            f"{need / 2**30:.2f} GiB needed for checkpoints (--keep-top-k {keep_top_k}) and the bundle; "
            "free space, choose another --out, or lower --keep-top-k"
        )


def is_write_failure(err: BaseException, run_dir: Path | None) -> bool:
    if not isinstance(err, OSError):
        return False
    if err.errno in WRITE_ERRNOS:
        return True
    return bool(
        run_dir is not None
        and err.filename
        and Path(run_dir).resolve() in Path(str(err.filename)).resolve().parents
    )


def write_failure_error(err: OSError, run_dir: Path, last_checkpoint: str | None) -> WriteFailed:
    """A file the run writes could not be written (a full disk, a read-only or vanished folder): one line
    with the file, the reason, and what is safe. Checkpoints are written whole or not at all, so the last
    one named is intact and the run resumes from it."""
    reason = write_error_reason(err)
    where = f" {err.filename}" if getattr(err, "filename", None) else ""
    safe = (f"checkpoint {last_checkpoint} is intact: free space, then `graft resume {run_dir}`" if last_checkpoint
            else f"no checkpoint was written yet: free space, then `graft train ... --out {run_dir}` starts it over")  # fmt: skip
    return WriteFailed(f"could not write{where}: {reason}; the run stopped, {safe}")


def explain_failure(err: Exception, batch_size: int, accum_steps: int, device: torch.device,
                    datasets: Iterable[object]) -> GraftError | None:  # fmt: skip
    """The user-facing error for a failure during training, or None when it is a bug (kept as is)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return out_of_memory_error(batch_size, accum_steps, device)
    if isinstance(err, RuntimeError):
        return worker_failure_error(err, datasets)
    return None
