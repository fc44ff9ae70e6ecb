"""The root of the command line: the typer app, global options, registrations, and main().

main() is the one place RoscoeError is caught: it prints the message and hint and exits with
the error's code. Tracebacks are shown only with --debug.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from roscoe import __version__
from roscoe.cli.context import CliState

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
        False, "--debug", help="Show tracebacks and every engine call.", envvar="ROSCOE_DEBUG"
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
    ctx.obj = CliState(runtime=runtime, debug=debug, quiet=quiet)
    from roscoe.cli import render

    render.set_quiet(quiet)
    ctx.call_on_close(ctx.obj.close)


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
    """Console-script entry point."""
    from roscoe.errors import RoscoeError

    debug = "--debug" in sys.argv or os.environ.get("ROSCOE_DEBUG", "") not in ("", "0")
    try:
        app()
    except RoscoeError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        from roscoe.cli import render

        render.error(exc)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug or an engine answer nobody mapped: still one clean line
        if debug:
            raise
        from roscoe.cli import render
        from roscoe.errors import OperationFailed

        render.error(
            OperationFailed(
                f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="run again with --debug for the traceback, and report it if it persists",
            )
        )
        sys.exit(1)
