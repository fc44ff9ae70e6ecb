"""Options several commands share, and option help that names the setting behind it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from roscoe.cli.context import state
from roscoe.config.settings import default, env_name


def _json_flag(ctx: typer.Context, value: bool) -> bool:
    # Eager, so it is known before any other option is checked: an error in those (or in the
    # command) is then printed as JSON too (cli/app.py main()).
    if value:
        state(ctx, check_settings=False).json = True
    return value


def json_option(help: str = "Machine-readable output.") -> Any:
    """`--json`: one JSON document on stdout, errors included (docs/json.md)."""
    return typer.Option("--json", help=help, is_eager=True, callback=_json_flag)


Json = Annotated[bool, json_option()]


def about(text: str, key: str) -> str:
    """Option help naming the setting behind the option: its default, key and variable."""
    value = default(key)
    shown = "none" if value is None else f"{value:g}" if isinstance(value, float) else value
    return f"{text} {bracketed(f'default: {shown}; {key}; env {env_name(key)}')}"


def bracketed(text: str) -> str:
    """`[text]` as option help shows it: typer reads help as rich markup, where a bare
    `[default: ...]` is a style tag and vanishes."""
    return f"\\[{text}]"
