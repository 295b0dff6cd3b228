"""Progress for every step that can take more than a second, drawn where the output goes.

    with step_bar("cache  frozen pass", total=len(loader.dataset), unit="images") as bar:
        for x, y in loader:
            ...
            bar.advance(len(y))
    for info in track(pool.map(inspect, paths), "check  reading images", total=len(paths), unit="images"): ...
    with status("log    tracing the model graph for TensorBoard"):
        writer.add_graph(model, example)

Where a bar is drawn is decided once per step from the console (`where`):
  terminal  rich's live display, redrawn 10 times a second and erased when the step ends, so the log keeps
            one line per record (the training loop's per-epoch summary, the header's lines);
  notebook  a Jupyter kernel (rich's `is_jupyter`): an output of the running cell updated in place through
            an IPython display handle, at most 4 times a second. rich's own live display in Jupyter needs
            ipywidgets, tqdm.auto too; a display handle works in any notebook front end (and nbclient).
            A finished step bar stays in the cell as its record (as tqdm's do in notebooks); spinners and
            the training loop's epoch bars are cleared (the epoch's summary line says it all);
  plain     a pipe, a file, a CI log: no bar; a step that took LONG_STEP_S or more leaves one line;
  off       `quiet`, or a console made quiet (the other ranks under torchrun): nothing at all.

A step that is handed no console draws on the one `progress_to` set for the code it runs inside (the
training run's console: its bars and its lines interleave on one display), else on stderr, so stdout
keeps only what a command prints as its result (`graft predict --json`, `graft advise --json`).
rich is imported here, never torch: the ONNX predictor draws its bar without importing torch.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar

from rich.console import Console
from rich.jupyter import JUPYTER_HTML_FORMAT
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

Where = Literal["terminal", "notebook", "plain", "off"]
T = TypeVar("T")

LONG_STEP_S = 10.0  # a step at least this long leaves one line where no bar is drawn (plain)
NOTEBOOK_REDRAW_S = 0.25  # a cell's output is a message to the front end: at most 4 per second

# The console (None: stderr) and quietness that steps without their own take (`progress_to`).
_target: ContextVar[tuple[Console | None, bool]] = ContextVar("graft_progress", default=(None, False))


def where(console: Console, quiet: bool = False) -> Where:
    """Where progress on `console` is drawn: "terminal", "notebook" (a Jupyter kernel), "plain" (a pipe,
    a file, a CI log) or "off" (`quiet`, or a console made quiet)."""
    if quiet or console.quiet:
        return "off"
    if console.is_jupyter:
        return "notebook"
    if console.is_terminal and not console.is_dumb_terminal:
        return "terminal"
    return "plain"


@contextmanager
def progress_to(console: Console | None, quiet: bool = False) -> Iterator[None]:
    """Steps inside draw on `console` (None: stderr) unless handed their own; `quiet`: no step draws.
    Nested calls stack; quietness is kept from the outer ones (a quiet run stays quiet all the way down)."""
    outer_console, outer_quiet = _target.get()
    token = _target.set((console or outer_console, quiet or outer_quiet))
    try:
        yield
    finally:
        _target.reset(token)


def _resolve(console: Console | None, quiet: bool) -> tuple[Console, bool]:
    ambient, ambient_quiet = _target.get()
    return console or ambient or Console(stderr=True, soft_wrap=True), quiet or ambient_quiet


class Bars:
    """Rows of rich progress (a training epoch and its validation, or one step) on the display `where`
    says: the same add/advance/update/remove calls in a terminal, in a notebook and (as no-ops) elsewhere.
    `keep`: a notebook keeps the last drawing when stopped (a terminal always erases it)."""

    def __init__(
        self, console: Console, *columns: str | ProgressColumn, quiet: bool = False, keep: bool = False
    ):
        self.console, self.kind, self.keep = console, where(console, quiet), keep
        self._cell = None
        self._drawn = 0.0
        if self.kind == "terminal":
            self._progress = RichProgress(*columns, console=console, transient=True)
        elif self.kind == "notebook":
            # Never started: rows are rendered by `_draw` into the cell, not by rich's refresh thread.
            offscreen = Console(file=io.StringIO(), force_jupyter=False, force_terminal=False)
            self._progress = RichProgress(*columns, console=offscreen, auto_refresh=False)
        else:
            self._progress = None

    @property
    def live(self) -> bool:
        return self._progress is not None

    def start(self) -> None:
        if self.kind == "terminal":
            self._progress.start()
        elif self.kind == "notebook" and self._cell is None:
            from IPython.display import display

            self._cell = display({"text/plain": ""}, raw=True, display_id=True)
            self._draw(force=True)

    def stop(self) -> None:
        if self.kind == "terminal":
            self._progress.stop()
        elif self.kind == "notebook" and self._cell is not None:
            if self.keep:
                self._draw(force=True)
            else:
                self._cell.update({"text/plain": ""}, raw=True)
            self._cell = None

    def add_task(self, description: str, total: float | None, **fields: Any) -> TaskID | None:
        if self._progress is None:
            return None
        task = self._progress.add_task(description, total=total, **fields)
        self._draw(force=True)
        return task

    def advance(self, task: TaskID | None, amount: float) -> None:
        if self._progress is not None and task is not None:
            self._progress.advance(task, amount)
            self._draw()

    def update(self, task: TaskID | None, **changes: Any) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, **changes)
            self._draw()

    def remove_task(self, task: TaskID | None) -> None:
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        """A notebook: the rows as HTML (and text) in the cell's output, at most every NOTEBOOK_REDRAW_S."""
        now = time.monotonic()
        if self._cell is None or (not force and now - self._drawn < NOTEBOOK_REDRAW_S):
            return
        self._drawn = now
        self._cell.update(render_for_notebook(self._progress.get_renderable(), self.console.width), raw=True)


def render_for_notebook(renderable: Any, width: int) -> dict[str, str]:
    """A rich renderable as the HTML and plain text a notebook shows (rich's own Jupyter look)."""
    recorder = Console(file=io.StringIO(), record=True, width=width, force_terminal=True, force_jupyter=False,
                       color_system="truecolor")  # fmt: skip
    recorder.print(renderable)
    html = recorder.export_html(inline_styles=True, code_format=JUPYTER_HTML_FORMAT, clear=False)
    return {"text/plain": recorder.export_text().rstrip("\n"), "text/html": html}


class _Rate(ProgressColumn):
    def render(self, task: Any) -> Text:
        unit = task.fields.get("unit") or "it"
        return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else f"- {unit}/s", style="cyan")


class _Eta(TimeRemainingColumn):
    """'eta 0:00:12' while running; nothing once done (a notebook keeps the finished bar)."""

    def render(self, task: Any) -> Text:
        return Text("") if task.finished else Text.assemble("eta ", super().render(task))


def step_columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        _Rate(),
        TimeElapsedColumn(),
        _Eta(),
    )


def status_columns() -> tuple[ProgressColumn, ...]:
    return SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn()


class Step:
    """One step's progress: `advance(n)` as its work gets done, `describe(text)` when its phase changes."""

    def __init__(self, bars: Bars, description: str, total: float | None, unit: str):
        self.description, self.total, self.unit = description, total, unit
        self.done = 0.0
        self._bars, self._task, self._started = bars, None, 0.0

    def __enter__(self) -> Step:
        self._started = time.perf_counter()
        self._bars.start()
        self._task = self._bars.add_task(self.description, self.total, unit=self.unit)
        return self

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        self._bars.advance(self._task, amount)

    def describe(self, description: str) -> None:
        self.description = description
        self._bars.update(self._task, description=description)

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()
        seconds = time.perf_counter() - self._started
        if self._bars.kind == "plain" and seconds >= LONG_STEP_S and exc[0] is None:
            counted = f" {self.done:g} {self.unit}" if self.total is not None else ""
            self._bars.console.print(f"{self.description}:{counted} in {seconds:.0f}s", highlight=False)


def step_bar(
    description: str, total: float, unit: str = "", console: Console | None = None, quiet: bool = False
) -> Step:
    """A bar over a step of `total` units (`advance(n)` as they are done). `console` None: the one
    `progress_to` set, else stderr."""
    console, quiet = _resolve(console, quiet)
    return Step(Bars(console, *step_columns(), quiet=quiet, keep=True), description, total, unit)


def status(description: str, console: Console | None = None, quiet: bool = False) -> Step:
    """A spinner and the elapsed time for a step with nothing to count (a trace, an export, a solve)."""
    console, quiet = _resolve(console, quiet)
    return Step(Bars(console, *status_columns(), quiet=quiet), description, None, "")


def track(
    items: Iterable[T], description: str, total: float, unit: str = "", console: Console | None = None,
    quiet: bool = False,
) -> Iterator[T]:  # fmt: skip
    """`items`, each advancing a bar of `total` by one."""
    with step_bar(description, total, unit, console, quiet) as bar:
        for item in items:
            yield item
            bar.advance()
