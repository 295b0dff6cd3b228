"""`graft board [RUNS_DIR]`: TensorBoard over every run in RUNS_DIR, until Ctrl-C."""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import time
from pathlib import Path

import typer

from graft.errors import GraftError
from graft.monitoring.console import make_console


def board_command(
    runs_dir: Path = typer.Argument(Path("runs"), help="The folder holding run folders (or one run)."),
    port: int = typer.Option(6006, "--port", "-p", min=1, max=65535, help="Port to serve on."),
    host: str = typer.Option(
        "localhost", "--host", help="Address to bind; localhost keeps it private to this machine."
    ),
) -> None:
    """Start TensorBoard on the runs' logs (loss, accuracy, LR, throughput), comparing runs side by side."""
    if not runs_dir.is_dir():
        what = "is not a folder" if runs_dir.exists() else "not found"
        raise GraftError(f"runs folder {runs_dir} {what}; pass the folder `graft train` wrote runs into")
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(runs_dir), "--host", host, "--port", str(port)])
    # TensorBoard writes a 4-line note about its fast loader to stderr as it starts, and werkzeug prints
    # why it cannot bind (then exits): a user error must stay one line, so both are captured.
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            url = board.launch()  # serves on a daemon thread
    except (program.TensorBoardServerException, OSError, SystemExit) as err:  # port in use, unknown host
        lines = stderr.getvalue().strip().splitlines()
        message = (getattr(err, "msg", None) or (lines[-1] if lines else str(err))).rstrip(".")
        suggestion = "choose another with --port" if "port" in message.lower() else "check --host"
        raise GraftError(f"cannot start TensorBoard on {host}:{port}: {message}; {suggestion}") from None
    make_console().print(f"TensorBoard on {url} for the runs in {runs_dir}; Ctrl-C stops it", highlight=False)
    sys.stdout.flush()  # a pipe buffers: whoever reads the URL must get it now
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored: ask for
    # KeyboardInterrupt explicitly, so `kill -INT` (and Ctrl-C) stop a board started with `&` too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # the way to stop it: not an error
        make_console().print("TensorBoard stopped")
