"""`roscoe server start|stop|restart|status`: the long-lived runner container."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json, about
from roscoe.config.settings import SHUTDOWN_GRACE_S, env_name
from roscoe.runner.layout import CANCEL_MARGIN_S

if TYPE_CHECKING:
    from roscoe.cli.progress import StartProgress
    from roscoe.runner.lifecycle import StartResult
    from roscoe.runner.status import Status

STOP_TIMEOUT_HELP = (
    "Seconds after SIGTERM before the runner is killed (default: its shutdown grace + "
    f"{CANCEL_MARGIN_S:g} s, {SHUTDOWN_GRACE_S + CANCEL_MARGIN_S:g} s; 0 kills at once)."
)

app = typer.Typer(
    name="server",
    help=(
        "Start, stop and inspect the runner container (the execution service).\n\n"
        "Examples:\n\n"
        "  roscoe server start\n\n"
        "  roscoe server status --json\n\n"
        "  roscoe server stop"
    ),
    no_args_is_help=True,
)


def _start_failed(exc: Exception) -> None:
    """Show the runner's last log lines before main() prints the error and its hint."""
    lines = getattr(exc, "log_lines", None)
    err = render.console(stderr=True)
    if lines:
        err.print(f"[dim]last {len(lines)} lines of the runner's log:[/]")
        for line in lines:
            err.print(f"  {render.escape(line)}")
    elif lines is not None:
        err.print("[dim]the runner wrote no log lines[/]")


def _starting(quiet: bool, begin: Callable[[StartProgress], StartResult]) -> None:
    """Run a start or restart with its progress shown, its failure's log lines, its report."""
    from roscoe.cli.progress import start_progress
    from roscoe.runner import lifecycle

    with start_progress(quiet) as progress:
        try:
            result = begin(progress)
        except lifecycle.StartFailed as exc:
            _start_failed(exc)
            raise
    _report(result, quiet)


def _report(result: StartResult, quiet: bool) -> None:
    from roscoe.runner.lifecycle import StartOutcome

    for message, hint in result.warnings:
        render.warn(message, hint)  # even when quiet: like errors, warnings go to stderr
    for item in result.swept:
        render.info(
            f"removed {render.escape(item.name or item.container_id)} "
            f"(run {render.escape(item.run_id or '?')}): {render.escape(item.reason)}"
        )
    if quiet:
        return
    out = render.console()
    short = result.container_id[:12]
    if result.outcome == StartOutcome.ALREADY_RUNNING:
        out.print(f"runner {result.name} ({short}) is already running on {result.endpoint}")
        return
    verb = "replaced and started" if result.outcome == StartOutcome.REPLACED else "started"
    out.print(f"runner {result.name} ({short}) {verb} in {result.seconds:.1f} s: {result.endpoint}")
    out.print(f"  image      {render.escape(result.image)}")
    out.print(f"  workspace  {render.escape(str(result.workspace))}")
    out.print(f"  token file {render.escape(str(result.token_file))}")


@app.command("start")
def start_command(
    ctx: typer.Context,
    *,
    image: str = typer.Option(None, "--image", help="Runner image reference.", show_default=False),
    use_local_image: bool = typer.Option(
        False, "--use-local-image", help="Use roscoe-runner:dev built by `make build-image`."
    ),
    pull: str = typer.Option("missing", "--pull", help="Pull policy: missing, always or never."),
    env: Annotated[
        list[str] | None,
        typer.Option(
            "-e",
            "--env",
            help="KEY=VALUE, or KEY to pass from your environment, for the service's runs.",
        ),
    ] = None,
    port: int = typer.Option(None, "--port", help=about("Port on 127.0.0.1.", "port")),
    workspace: str = typer.Option(
        None,
        "--workspace",
        help=f"Workspace root (env {env_name('workspace')}).",
        show_default=False,
    ),
    log_level: str = typer.Option(
        None,
        "--log-level",
        help=about(
            "The service's log level: debug, info, warning or error (debug also logs every "
            "/health probe).",
            "service.log_level",
        ),
        show_default=False,
    ),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Replace a runner of another roscoe version, or remove a container that holds "
        "the name but is not roscoe's.",
    ),
    wait_timeout: float = typer.Option(
        60.0, "--wait-timeout", help="Seconds to wait for the service to answer."
    ),
) -> None:
    """Start the runner container and wait until its service answers.

    Already running with the same image and settings: nothing changes. A stopped or
    outdated runner, or one started with other settings (-e, port, workspace, run limits), is
    replaced; the image and the port are checked first. The container is named
    roscoe-runner (ROSCOE_CONTAINER_NAME changes it).
    Exits 0 when the service answers, 1 when it did not start, 2 on bad input,
    3 without an engine, 4 when the image is missing.

    Examples:
      roscoe server start
      roscoe server start --use-local-image --port 9000
      roscoe server start -e API_KEY -e MODE=fast --workspace ~/cases
    """
    from roscoe.config.parse import parse_env
    from roscoe.engine import connect_url
    from roscoe.runner import lifecycle
    from roscoe.runner.plan import check_isolation
    from roscoe.runner.store import StartSettings

    lifecycle.check_wait_timeout(wait_timeout)
    st = state(ctx)
    wanted = StartSettings(
        image=image,
        use_local_image=use_local_image,
        pull=pull.strip().lower(),
        port=port,
        workspace=workspace,
        log_level=log_level,
        env=parse_env(env or [], os.environ),
    )
    engine = st.engine()
    check_isolation(engine, st.settings, connect_url)  # before anything changes
    _starting(
        st.quiet,
        lambda progress: lifecycle.start(
            engine,
            st.settings,
            wanted,
            replace=replace,
            wait_timeout=wait_timeout,
            progress=progress,
            on_pull=progress.pull,
        ),
    )


@app.command("stop")
def stop_command(
    ctx: typer.Context,
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help=STOP_TIMEOUT_HELP,
        show_default=False,
    ),
) -> None:
    """Stop the runner gracefully and remove its container.

    The service gets SIGTERM and finishes (or kills) its runs; after --timeout seconds the
    engine kills it. Not running: says so and exits 0.

    Examples:
      roscoe server stop
      roscoe server stop --timeout 60
    """
    from roscoe.runner import lifecycle

    lifecycle.check_stop_timeout(timeout)
    st = state(ctx)
    result = lifecycle.stop(st.engine(), st.settings, timeout=timeout)
    if st.quiet:
        return
    if result.outcome == lifecycle.StopOutcome.NOT_RUNNING:
        render.console().print(f"runner {result.name} is not running")
    else:
        short = (result.container_id or "")[:12]
        render.console().print(f"runner {result.name} ({short}) stopped and removed")


@app.command("restart")
def restart_command(
    ctx: typer.Context,
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help=STOP_TIMEOUT_HELP,
        show_default=False,
    ),
    wait_timeout: float = typer.Option(
        60.0, "--wait-timeout", help="Seconds to wait for the service to answer."
    ),
) -> None:
    """Stop the runner and start a new one with the settings of the last start.

    Image, port, workspace and -e variables are those `roscoe server start` was given.

    Examples:
      roscoe server restart
    """
    from roscoe.engine import connect_url
    from roscoe.runner import lifecycle
    from roscoe.runner.plan import check_isolation

    lifecycle.check_wait_timeout(wait_timeout)
    lifecycle.check_stop_timeout(timeout)
    st = state(ctx)
    engine = st.engine()
    check_isolation(engine, st.settings, connect_url)  # before the old runner goes
    _starting(
        st.quiet,
        lambda progress: lifecycle.restart(
            engine,
            st.settings,
            stop_timeout=timeout,
            wait_timeout=wait_timeout,
            progress=progress,
            on_pull=progress.pull,
        ),
    )


@app.command("status")
def status_command(
    ctx: typer.Context,
    json_output: Json = False,
) -> None:
    """Show the runner's state, image, health and endpoint.

    Exits 0 when the runner is running and its service answers, 1 otherwise,
    3 when no engine is reachable.

    Examples:
      roscoe server status
      roscoe server status --json | jq .state
    """
    from roscoe.runner.status import server_status

    st = state(ctx)
    status = server_status(st.engine(), st.settings)
    if json_output:
        render.print_json(status.to_json())
    else:
        _print_status(status)
    if not status.healthy:
        raise typer.Exit(1)


def _print_status(status: Status) -> None:
    from roscoe.runner.status import RunnerState

    out = render.console()
    word = {
        RunnerState.RUNNING: "[green]running[/]",
        RunnerState.STARTING: "[yellow]starting[/] (the service does not answer yet)",
        RunnerState.DEGRADED: "[red]degraded[/] (the service answers but cannot reach the "
        "engine; `roscoe server start` replaces it)",
        RunnerState.EXITED: f"[red]exited[/] (code {status.exit_code})",
        RunnerState.ABSENT: "[dim]absent[/]",
    }[status.state]
    rows: list[tuple[str, str]] = [("state", word), ("name", status.name)]
    if status.container_id:
        image = status.image or ""
        version = status.image_version
        match = "" if status.version_matches else "  [yellow](differs from this CLI)[/]"
        rows += [
            ("container", status.container_id[:12]),
            ("image", render.escape(image)),
            ("digest", render.escape(str(status.image_digest or "unknown"))),
            ("version", f"image {render.escape(version)}, CLI {_cli_version()}{match}"),
        ]
        if not status.version_matches and version != "unknown":
            rows.append(
                (
                    "upgrade",
                    f"`roscoe server restart` (or `server start --replace`) moves it to "
                    f"{_cli_version()}",
                )
            )
    engine = status.engine
    where = f"{engine['kind']} {engine['version']} at {engine['endpoint']}"
    rows.append(("engine", render.escape(where)))
    if status.uptime_s is not None:
        rows.append(("uptime", _duration(status.uptime_s)))
    if status.state in (RunnerState.RUNNING, RunnerState.STARTING, RunnerState.DEGRADED):
        h = status.health
        said = (
            f"answering ({h.latency_ms} ms)"
            if h.answering
            else f"not answering ({render.escape(str(h.error))})"
        )
        if h.engine_reachable is False:
            said += f"; [red]cannot reach the engine[/] ({render.escape(str(h.engine_error))})"
        rows.append(("health", said))
    rows += [
        ("endpoint", status.endpoint),
        ("token file", render.escape(str(_token_file()))),
        ("workspace", render.escape(status.workspace)),
    ]
    in_flight = "?" if status.runs_in_flight is None else str(status.runs_in_flight)
    rows.append(("runs", f"{in_flight} in flight, {status.runs_done} recorded"))
    if status.foreign:
        rows.append(("note", f"a container named {status.name} exists but is not roscoe's"))
    for key, value in rows:
        out.print(f"{key:<11}{value}")


def _cli_version() -> str:
    from roscoe import __version__

    return __version__


def _token_file() -> object:
    from roscoe.config import paths

    return paths.token_file()


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
