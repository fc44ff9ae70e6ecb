"""The root of the command line: the typer app, global options, registrations, and main().

main() is the one place RoscoeError is caught: it prints the message and hint and exits with
the error's code. Tracebacks are shown only with --debug.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

import typer

from roscoe import __version__
from roscoe.cli.context import CliState
from roscoe.config.settings import ENV_DEBUG

if TYPE_CHECKING:
    from roscoe.errors import RoscoeError

app = typer.Typer(
    name="roscoe",
    help=(
        "Run scripts against exactly one case folder, in a scoped, short-lived container "
        "on Docker or Podman.\n\n"
        "Examples:\n"
        "  roscoe doctor\n"
        "  roscoe run demo-case create_file_inventory.py -- --format md\n"
        "  roscoe config show"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() renders errors; tracebacks only with --debug
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
)


def _version_flag(value: bool) -> None:
    if value:
        # Deliberately nothing but the package version: this must not touch the docker SDK.
        sys.stdout.write(f"roscoe {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="Container engine: docker, podman or auto. [env: ROSCOE_RUNTIME]",
        show_default=False,
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks and every engine call.", envvar=ENV_DEBUG
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only results and errors."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_flag,
        is_eager=True,
        help="Print roscoe's version and exit.",
    ),
) -> None:
    """Run scripts against exactly one case folder, in a scoped container."""
    if debug:
        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="debug: %(name)s: %(message)s"
        )
        for noisy in ("urllib3", "docker"):
            logging.getLogger(noisy).setLevel(logging.INFO)
    # main() hands its CliState in (it reads `json` back when a command fails).
    cli = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    cli.runtime, cli.debug, cli.quiet = runtime, debug, quiet
    ctx.obj = cli
    from roscoe.cli import render

    render.set_quiet(quiet)
    ctx.call_on_close(cli.close)


# Registrations. Each module holds one command or one group; keep this block the only
# place commands are attached to the app.
from roscoe.cli import doctor as _doctor  # noqa: E402
from roscoe.cli import version as _version  # noqa: E402

app.command("version")(_version.version_command)
app.command("doctor")(_doctor.doctor_command)
from roscoe.cli import config as _config  # noqa: E402

app.add_typer(_config.app, name="config")
from roscoe.cli import logs as _logs  # noqa: E402
from roscoe.cli import server as _server  # noqa: E402

app.add_typer(_server.app, name="server")
app.command("logs")(_logs.logs_command)
from roscoe.cli import gc as _gc  # noqa: E402
from roscoe.cli import run as _run  # noqa: E402
from roscoe.cli import runs as _runs  # noqa: E402

# Options stop at CASE: everything after SCRIPT reaches the script untouched.
app.command("run", context_settings={"allow_interspersed_args": False})(_run.run_command)
app.add_typer(_runs.app, name="runs")
app.command("gc")(_gc.gc_command)
from roscoe.cli import image as _image  # noqa: E402

app.add_typer(_image.app, name="image")
from roscoe.cli import mcp as _mcp  # noqa: E402

app.command("mcp")(_mcp.mcp_command)


def main() -> None:
    """Console-script entry point, and the one place errors are caught.

    A RoscoeError prints its message and hint (or, under --json, one JSON document
    {"error": {"message", "hint", "exit_code"}} on stdout) and exits with its code; so do the
    usage errors typer finds in the command line. Tracebacks only with --debug.
    """
    from roscoe.cli.context import CliState
    from roscoe.errors import RoscoeError

    args = sys.argv[1:]
    debug = "--debug" in args or os.environ.get(ENV_DEBUG, "") not in ("", "0")
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
