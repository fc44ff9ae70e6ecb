"""The command line's entry point: the commands, the typer app built from them, and main().

main() is the one place errors are caught: a RoscoeError prints its message and hint and
exits with its code. Tracebacks are shown only with --debug.

Startup is part of every `roscoe run`, so this module imports nothing heavy: `--version` is
answered before typer is even imported, and a command line that names a command gets an app
holding that command alone (building every command costs typer ~10 ms). `app` (every
command) is built on first use, for shell completion, help and tests.
"""

from __future__ import annotations

import os
import sys

from roscoe import __version__

# Not typing.TYPE_CHECKING: importing typing alone costs `roscoe --version` several ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    import typer

    from roscoe.cli.context import CliState
    from roscoe.errors import RoscoeError


class Command:
    """Where a command lives: roscoe.cli.<module>.<attribute>, a command function or, for a
    group, a typer app; with the click context settings it needs."""

    __slots__ = ("attribute", "group", "module", "settings")

    def __init__(
        self,
        module: str,
        attribute: str,
        *,
        group: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.module = module
        self.attribute = attribute
        self.group = group
        self.settings = settings


# Every command and group, in the order of `roscoe --help`: the one place they are attached.
COMMANDS: dict[str, Command] = {
    "version": Command("version", "version_command"),
    "doctor": Command("doctor", "doctor_command"),
    "config": Command("config", "app", group=True),
    "server": Command("server", "app", group=True),
    "logs": Command("logs", "logs_command"),
    # Options stop at CASE: everything after SCRIPT reaches the script untouched.
    "run": Command("run", "run_command", settings={"allow_interspersed_args": False}),
    "runs": Command("runs", "app", group=True),
    "gc": Command("gc", "gc_command"),
    "image": Command("image", "app", group=True),
    "mcp": Command("mcp", "mcp_command"),
    "token": Command("token", "app", group=True),
}
COMPLETION_VARIABLE = "_ROSCOE_COMPLETE"  # set by the shell when it asks for completions


def build_app(only: str | None = None) -> typer.Typer:
    """The typer app with every command, or with the command `only` alone."""
    import importlib

    from roscoe.cli.root import new_app

    app = new_app()
    for name, command in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"roscoe.cli.{command.module}"), command.attribute)
        if command.group:
            app.add_typer(target, name=name)
        else:
            app.command(name, context_settings=command.settings)(target)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # every command: built on first use
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_named(args: list[str]) -> str | None:
    """The command a command line names: the first word that is neither a global option nor
    the value of --runtime (None when there is none)."""
    words = iter(args)
    for word in words:
        if word == "--runtime":
            next(words, None)
        elif word == "--":
            return None
        elif not word.startswith("-"):
            return word
    return None


def run() -> NoReturn:
    """The console script: main(), then out of the process at once.

    Python's own shutdown (tearing down every module it imported, collecting what is left)
    costs a command like `roscoe run` tens of milliseconds after its work is done. By then
    everything roscoe writes is written and closed (records, output, the engine's
    connections), so only the standard streams are flushed before leaving.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"), as Python does it
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    import contextlib

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(code)


def main() -> None:
    """The command line, and the one place errors are caught.

    A RoscoeError prints its message and hint (or, under --json, one JSON document
    {"error": {"message", "hint", "exit_code"}} on stdout) and exits with its code; so do the
    usage errors typer finds in the command line. Tracebacks only with --debug.
    """
    args = sys.argv[1:]
    if args == ["--version"]:  # the one answer that needs nothing else
        sys.stdout.write(f"roscoe {__version__}\n")
        return
    import gc

    # Startup allocates much and frees little: collecting garbage meanwhile costs ~10% of it.
    # cli.context.state(), where every command starts, turns the collector back on.
    gc.disable()
    try:
        _main(args)
    finally:
        gc.enable()


def _main(args: list[str]) -> None:
    from roscoe.cli.context import CliState
    from roscoe.config.settings import ENV_DEBUG
    from roscoe.errors import RoscoeError

    debug = "--debug" in args or os.environ.get(ENV_DEBUG, "") not in ("", "0")
    named = command_named(args)
    completing = COMPLETION_VARIABLE in os.environ
    app = build_app(only=None if completing or named not in COMMANDS else named)
    cli = CliState()
    try:
        # Not standalone: typer's own usage errors reach this function too (see _usage_error).
        code = app(args=args, standalone_mode=False, obj=cli)
    except RoscoeError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _fail(cli, exc)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if _usage_error(cli, exc, args):
            return
        if debug:
            raise
        from roscoe.errors import OperationFailed

        # A bug, or an engine answer nobody mapped: still one clean line.
        _fail(
            cli,
            OperationFailed(
                f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="run again with --debug for the traceback, and report it if it persists",
            ),
        )
    sys.exit(code if isinstance(code, int) else 0)


def _fail(cli: CliState, exc: RoscoeError) -> NoReturn:
    from roscoe.cli import render

    if cli.json:
        render.error_json(exc.message, exc.hint, int(exc.exit_code))
    else:
        render.error(exc)
    sys.exit(int(exc.exit_code))


def _usage_error(cli: CliState, exc: Exception, args: list[str]) -> bool:
    """Show one of typer's (click's) own exceptions as typer would, and exit; False when
    `exc` is none of them. Told apart by what they carry, as typer versions place click
    differently (0.28 carries its own copy).

    JSON when --json was read, or, for a command line that could not be read at all (an
    unknown option), when --json is among its options (before any `--`)."""
    name = type(exc).__name__
    if name == "Abort":  # typer's, from a prompt's EOF or a Ctrl-C
        sys.exit(130 if isinstance(exc.__cause__, KeyboardInterrupt) else 1)
    if not (hasattr(exc, "format_message") and hasattr(exc, "show")):
        return False
    exit_code = int(getattr(exc, "exit_code", 2))
    options = args[: args.index("--")] if "--" in args else args
    if cli.json or "--json" in options:
        from roscoe.cli import render

        context = getattr(exc, "ctx", None)
        command = getattr(context, "command_path", "roscoe")
        render.error_json(exc.format_message(), f"`{command} --help` shows the usage", exit_code)
    else:
        try:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
        except ImportError:  # typer without rich
            exc.show()
    sys.exit(exit_code)
