"""`graft` command line: a thin typer shell over the Python API.

User errors (`GraftError`) print one line, `error: ...`, and exit with code 2; bugs keep their traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from graft._version import __version__
from graft.cli import board, check, demo, models, predict, runs, strategy, train
from graft.cli import eval as eval_cli
from graft.cli import export as export_cli
from graft.errors import WRITE_ERRNOS, GraftError
from graft.monitoring.console import make_console

HELP = "Fine-tune pretrained image and text models on your own data: train, predict, and share the result."


class _NoFlagTypes:
    """Help without a `<bool>` type beside on/off flags (--quiet, --strict/--no-strict, --help): they take
    no value, so the type column stays empty for them."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):  # typer's own (vendored) click classes: no isinstance here
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        super().format_help(ctx, formatter)


class Command(_NoFlagTypes, TyperCommand):
    pass


class Group(_NoFlagTypes, TyperGroup):
    pass


app = typer.Typer(
    name="graft",
    cls=Group,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # bugs get a plain traceback; user errors never reach it
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"graft {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Fine-tune pretrained image and text models on your own data: train, predict, and share the result."""


app.command("check", cls=Command, no_args_is_help=True)(check.check_command)
app.command("train", cls=Command, no_args_is_help=True)(train.train_command)
app.command("resume", cls=Command, no_args_is_help=True)(train.resume_command)
app.command("predict", cls=Command, no_args_is_help=True)(predict.predict_command)
app.command("eval", cls=Command, no_args_is_help=True)(eval_cli.eval_command)
app.command("export", cls=Command, no_args_is_help=True)(export_cli.export_command)
app.command("advise", cls=Command, no_args_is_help=True)(strategy.advise_command)
app.command("lr-find", cls=Command, no_args_is_help=True)(strategy.lr_find_command)
app.command("summary", cls=Command, no_args_is_help=True)(strategy.summary_command)
app.command("models", cls=Command)(models.models_command)
app.command("config", cls=Command)(models.config_command)
app.command("demo", cls=Command)(demo.demo_command)
app.command("runs", cls=Command)(runs.runs_command)
app.command("board", cls=Command)(board.board_command)


def main() -> None:
    try:
        app()
    except GraftError as err:
        # An error raised inside a DataLoader worker arrives wrapped in the worker's traceback text;
        # its last line is the message.
        message = str(err).strip().splitlines()[-1].removeprefix("graft.errors.GraftError: ")
        # escape(): a message may hold brackets ("pip install 'torchgraft[labels]'") that are not markup
        make_console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)
        sys.exit(2)
    except OSError as err:
        # The file system said no (a read-only run folder, a full disk, no permission): the user's to fix,
        # so one line naming the file; GRAFT_DEBUG=1 keeps the traceback. Any other OSError keeps it always.
        if os.environ.get("GRAFT_DEBUG") or err.errno not in WRITE_ERRNOS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        make_console(stderr=True).print(
            f"[bold red]error:[/bold red] {where}{err.strerror or err} (GRAFT_DEBUG=1 shows where it happened)",
            highlight=False,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        make_console(stderr=True).print("interrupted")
        sys.exit(130)
