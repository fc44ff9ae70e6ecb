"""`roscoe config show|path|get|set|unset`: the settings, where each comes from, and the file."""

from __future__ import annotations

import json
from typing import Any

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json

app = typer.Typer(no_args_is_help=True)


@app.callback()
def config_group() -> None:
    """Show and change settings: flag > environment > config file > default.

    The config file is <config dir>/config.toml (`roscoe config path`).

    Examples:
      roscoe config show
      roscoe config set run.memory 4g
      roscoe config unset run.memory
    """


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@app.command("show")
def show_command(
    ctx: typer.Context,
    json_output: Json = False,
) -> None:
    """Show every setting's effective value and where it came from.

    Sources: flag, env (the variable is named), config (the config file) or default.

    Examples:
      roscoe config show
      roscoe config show --json | jq '.settings.port'
    """
    from roscoe.config.file import effective
    from roscoe.images.version import pinned_image

    st = state(ctx, check_settings=False)
    report = effective(st.settings, {"engine": st.runtime}, pinned_image=pinned_image())
    if json_output:
        render.print_json(report.to_json())
        return
    out = render.console()
    exists = "" if report.exists else " (absent: every value is a default or from the environment)"
    out.print(f"config file: {render.escape(str(report.path))}{exists}")
    width = max(len(r.key) for r in report.values)
    for resolved in report.values:
        value = render.escape(_text(resolved.value))
        out.print(f"{resolved.key:<{width}}  {value}  [dim]({resolved.source})[/]")


@app.command("path")
def path_command(ctx: typer.Context) -> None:
    """Print the path of the config file (it may not exist yet).

    ROSCOE_CONFIG_DIR moves it; otherwise it is in the user config dir.

    Examples:
      roscoe config path
      $EDITOR "$(roscoe config path)"
    """
    render.console().print(
        render.escape(str(state(ctx, check_settings=False).settings.config_path))
    )


@app.command("get")
def get_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Setting, e.g. run.memory (see `roscoe config show`)."),
) -> None:
    """Print one setting's effective value (nothing else, for scripts).

    Examples:
      roscoe config get port
      roscoe config get run.memory
    """
    from roscoe.config.file import effective
    from roscoe.config.settings import SETTINGS
    from roscoe.errors import UsageError
    from roscoe.images.version import pinned_image

    if key not in SETTINGS:
        raise UsageError(f"unknown setting '{key}'", hint=f"known settings: {', '.join(SETTINGS)}")
    st = state(ctx, check_settings=False)
    report = effective(st.settings, {"engine": st.runtime}, pinned_image=pinned_image())
    value = next(r.value for r in report.values if r.key == key)
    typer.echo(_text(value))


@app.command("set")
def set_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Setting, e.g. run.memory (see `roscoe config show`)."),
    value: str = typer.Argument(..., help="New value; checked before it is written."),
) -> None:
    """Write KEY = VALUE to the config file, keeping its comments.

    Creates the file and its folder when absent. An invalid value exits 2 and names what is
    allowed; the file is then left as it was.

    Examples:
      roscoe config set run.memory 4g
      roscoe config set engine podman
      roscoe config set service.concurrency 8
    """
    from roscoe.config.file import set_value

    change = set_value(key, value, state(ctx, check_settings=False).settings.config_path)
    shown = render.escape(json.dumps(change.value))
    render.info(f"{key} = {shown} written to {render.escape(str(change.path))}")


@app.command("unset")
def unset_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Setting to remove from the config file."),
) -> None:
    """Remove KEY from the config file, so the environment or the default applies again.

    Removing a key the file does not hold is not an error.

    Examples:
      roscoe config unset run.memory
      roscoe config unset engine
    """
    from roscoe.config.file import unset_value

    change = unset_value(key, state(ctx, check_settings=False).settings.config_path)
    where = render.escape(str(change.path))
    render.info(f"{key} removed from {where}" if change.changed else f"{key} was not in {where}")
