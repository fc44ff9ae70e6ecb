"""All terminal output in one place: plain text when piped or NO_COLOR, JSON when asked."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from roscoe.errors import RoscoeError

_consoles: dict[str, Console] = {}


def console(stderr: bool = False) -> Console:
    """rich consoles, created on first use (rich costs ~15 ms to import)."""
    key = "err" if stderr else "out"
    if key not in _consoles:
        from rich.console import Console

        # rich drops styling when not a terminal, but under NO_COLOR it still sends bold and
        # dim: no colour system at all makes the output plain text.
        plain = bool(os.environ.get("NO_COLOR"))
        _consoles[key] = Console(
            stderr=stderr,
            highlight=False,
            # Names, paths and messages are printed as they are: never ':zzz:' as an emoji.
            # roscoe's own markup ([bold]) stays; text from elsewhere goes through escape().
            emoji=False,
            soft_wrap=True,
            color_system=None if plain else "auto",
        )
    return _consoles[key]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


_quiet = False


def set_quiet(value: bool) -> None:
    """-q/--quiet, set once by the root callback: info() then prints nothing."""
    global _quiet  # noqa: PLW0603 -- one flag per process, like the consoles above
    _quiet = value


def info(message: str) -> None:
    """Progress chatter: stderr, so stdout stays clean for a script's own output or JSON.

    `message` is rich markup: escape() whatever part of it came from a user or an engine.
    Silent under -q/--quiet; results, warnings and errors are still printed."""
    if not _quiet:
        console(stderr=True).print(message)


def warn(message: str, hint: str | None = None) -> None:
    console(stderr=True).print(f"[yellow]warning:[/] {escape(message)}")
    if hint:
        console(stderr=True).print(f"  [dim]hint: {escape(hint)}[/]")


def error(exc: RoscoeError) -> None:
    err = console(stderr=True)
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"  [dim]hint: {escape(exc.hint)}[/]")


def error_json(message: str, hint: str | None, exit_code: int) -> None:
    """An error under --json: one document on stdout, like every other --json output."""
    print_json({"error": {"message": message, "hint": hint, "exit_code": exit_code}})


def escape(text: str) -> str:
    """`text` shown literally inside rich markup (emoji codes are off on every console)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
