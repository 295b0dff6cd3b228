"""TensorBoard: every kind of record, in the layout the seed notes teach (runs/NAME/tb/)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graft.monitoring.sink import Captioned, Histogram, Sink, scalar_tags
from graft.monitoring.visuals import captioned_grid


def _quiet_writer_thread(hook):
    """tensorboard writes events from a thread; when a write fails (a full disk) the thread dies printing
    a traceback, and the same error is raised again in the training thread at its next call, where graft
    turns it into one line. The thread's own print is dropped; every other thread's error is not."""

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__module__.startswith("tensorboard."):
            return
        hook(args)

    excepthook.graft_quiet = True
    return excepthook


class TensorBoardSink(Sink):
    def __init__(self, log_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        if not getattr(threading.excepthook, "graft_quiet", False):
            threading.excepthook = _quiet_writer_thread(threading.excepthook)

        # purge_step: on resume, TensorBoard hides events from step `purge_step` on that the crashed
        # process logged after its last checkpoint, so the curves continue instead of doubling back.
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.where = f"the TensorBoard events in {log_dir}"

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for tag, value in scalar_tags(metrics).items():
            self.writer.add_scalar(tag, value, step)
        if "epoch" in metrics:
            self.writer.flush()  # epoch ends are what a user watches for; step records may wait

    def histograms(self, histograms: dict[str, Histogram], step: int) -> None:
        for tag, h in histograms.items():
            self.writer.add_histogram_raw(
                tag, h.min, h.max, h.num, h.sum, h.sum_squares, h.edges[1:], h.counts, step
            )

    def images(self, tag: str, items: list[Captioned], step: int) -> None:
        # TensorBoard images carry no captions: the labels are drawn under each tile.
        self.writer.add_image(tag, captioned_grid(items), step, dataformats="HWC")
        self.writer.flush()

    def text(self, tag: str, markdown: str, step: int) -> None:
        self.writer.add_text(tag, markdown, step)

    def graph(self, model: Any, example: Any) -> None:
        with warnings.catch_warnings():  # add_graph traces with torch.jit, deprecated but still what it uses
            warnings.simplefilter("ignore")
            self.writer.add_graph(model, example)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The HPARAMS tab: written into this run's own folder (torch's add_hparams would make a
        timestamped sub-run), with the metrics as scalars under their hparam/ tags."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        writer = self.writer._get_file_writer()
        for summary in hparams_summary(hparams, metrics):
            writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value)
        self.writer.flush()

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
