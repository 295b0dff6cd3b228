"""What a person watching the terminal (or a notebook) sees: a live bar per epoch, then one summary line
per epoch.

The bar (samples done, samples/s, elapsed, ETA, last logged loss and head LR) is drawn on a terminal and in a
Jupyter notebook (graft/progress.py decides where and draws it); with `--quiet` or when stdout is a pipe or
CI log, only the summary lines are printed.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from graft.config.task_names import format_metrics
from graft.progress import Bars


def make_console(stderr: bool = False) -> Console:
    """A console whose lines are never hard-wrapped: logs and CI output stay one record per line."""
    console = Console(soft_wrap=True, stderr=stderr)
    if not console.is_terminal:  # piped or CI: no terminal width to respect, don't truncate tables at 80
        console.width = 160
    return console


class _SpeedColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:,.1f} samples/s" if task.speed else "- samples/s", style="cyan")


class Progress:
    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self._bar = Bars(
            console,
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _SpeedColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            quiet=quiet,  # the summary line replaces the bar when the epoch ends (terminal and notebook)
        )
        self.live = self._bar.live
        self._task = None
        self._val_task = None
        self._epochs = 0
        self._epoch_times: list[float] = []

    def start_epoch(self, epoch: int, epochs: int, total_samples: int, done: int = 0) -> None:
        """`done`: samples of this epoch trained before a restart."""
        self._epochs = epochs
        self._bar.start()
        self._task = self._bar.add_task(
            f"epoch {epoch}/{epochs}", total=total_samples, completed=done, loss=""
        )

    def start_validation(self, total_samples: int) -> None:
        """A second line under the epoch's bar while the validation set is evaluated (it used to freeze)."""
        self._val_task = self._bar.add_task("  validating", total=total_samples, loss="")

    def advance_validation(self, samples: int) -> None:
        self._bar.advance(self._val_task, samples)

    def note(self, text: str) -> None:
        """A line between epochs (an unfreeze, a cache hit)."""
        self.console.print(text, highlight=False)

    def advance(self, samples: int) -> None:
        self._bar.advance(self._task, samples)

    def show_loss(self, loss: float, lr: float) -> None:
        self._bar.update(self._task, loss=f"loss {loss:.4f}  lr {lr:.2e}")

    def end_epoch(self, record: dict[str, float], improved: bool, state: Any) -> None:
        self._bar.remove_task(self._task)
        if self._val_task is not None:
            self._bar.remove_task(self._val_task)
            self._val_task = None
        self._bar.stop()
        self._epoch_times.append(record["epoch_time"])
        left = (self._epochs - record["epoch"]) * sum(self._epoch_times) / len(self._epoch_times)
        self.console.print(
            f"epoch {record['epoch']}/{self._epochs}  train_loss {record['train_loss']:.4f}  "
            f"{format_metrics(record)}"
            f"{' [green](best)[/green]' if improved else ''}  "
            f"{record['epoch_time']:.1f}s  {record['samples_per_s']:.1f} samples/s"
            + (f"  ~{format_seconds(left)} left" if left > 0 else ""),
            highlight=False,
        )


def format_seconds(seconds: float) -> str:
    """'4.2s', '37s', '2m05s', '1h07m'."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def plural(count: int, singular: str, many: str | None = None) -> str:
    """The count and the word that agrees with it: '1 epoch', '3 epochs', '0 classes', '1 training image'.

    `many` is the plural where adding s to the last word (es after s, x, sh, tch: classes, batches) is wrong."""
    if count == 1:
        return f"{count} {singular}"
    return f"{count} {many or singular + ('es' if singular.endswith(('s', 'x', 'sh', 'tch')) else 's')}"
