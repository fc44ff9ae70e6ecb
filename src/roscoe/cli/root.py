"""The root of the typer app: its help, the global options and their callback."""

from __future__ import annotations

import sys

import typer

from roscoe import __version__
from roscoe.cli.context import CliState
from roscoe.cli.options import bracketed
from roscoe.config.settings import ENV_DEBUG, env_name

HELP = (
    "Run scripts against exactly one case folder, in a scoped, short-lived container "
    "on Docker or Podman.\n\n"
    "Examples:\n"
    "  roscoe doctor\n"
    "  roscoe run demo-case create_file_inventory.py -- --format md\n"
    "  roscoe config show"
)


def new_app() -> typer.Typer:
    """The app with its global options and no command yet (cli/app.py attaches them)."""
    app = typer.Typer(
        name="roscoe",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,  # main() renders errors; tracebacks only with --debug
        context_settings={"help_option_names": ["-h", "--help"]},
        add_completion=True,
    )
    app.callback()(root)
    return app


def _version_flag(value: bool) -> None:
    if value:
        # Deliberately nothing but the package version: this must not touch the docker SDK.
        sys.stdout.write(f"roscoe {__version__}\n")
        raise typer.Exit(0)


def root(
    ctx: typer.Context,
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="Container engine: docker, podman or auto. " + bracketed(f"env: {env_name('engine')}"),
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
        import logging

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
