"""`graft models [PATTERN]` and `graft config`: what can be trained, and with which settings."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.table import Table

from graft.config import config_to_dict, parse_set, resolve_config
from graft.monitoring.console import make_console


def models_command(
    pattern: str | None = typer.Argument(
        None, help="Shell-style filter: 'resnet*', '*lite*', 'tv:*'.", show_default=False
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Only models whose pretrained weights are on this machine."
    ),
    limit: int = typer.Option(100, "--limit", help="Show at most this many rows."),
) -> None:
    """List models graft can fine-tune, and which have pretrained weights available offline."""
    from graft.models.registry import list_models

    console = make_console()
    entries = list_models(pattern, offline_only=offline)
    if pattern is None and not offline:
        shown = [e for e in entries if e.offline]
        hidden = len(entries) - len(shown)
    else:
        shown, hidden = entries[:limit], max(0, len(entries) - limit)
    table = Table("model", "family", "pretrained weights", "note")
    for e in shown:
        table.add_row(
            e.name, e.family, "[green]offline[/green]" if e.offline else "hub (needs network)", e.note
        )
    if shown:
        console.print(table)
    else:
        console.print(f"no models match {pattern!r}" + (" with offline weights" if offline else ""))
    if hidden:
        console.print(
            f"... and {hidden} more; filter with a PATTERN, e.g. `graft models 'resnet*'` or `graft models 'tv:*'`",
            highlight=False,
        )


def config_command(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML file to merge over the defaults.", show_default=False
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a key, e.g. --set optim.lr=3e-4 (repeatable).", show_default=False
    ),
) -> None:
    """Print the resolved config (defaults < --config < --set) as YAML: a starting point for --config files."""
    cfg = resolve_config(config, parse_set(set_))
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
