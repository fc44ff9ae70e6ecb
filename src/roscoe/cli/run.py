"""`roscoe run CASE SCRIPT [ARGS]...`: one script, one case, one fresh container."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import IO, Annotated, Any, NoReturn

import typer

from roscoe.cli.context import state
from roscoe.errors import ExitCode, ImageError


def run_command(
    ctx: typer.Context,
    *,
    case: str = typer.Argument(..., help="The case: a folder in the workspace's projects/."),
    script: str = typer.Argument(..., help="The script: a .py or .sh file in Tools/."),
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Passed to the script verbatim (put them after `--`).", show_default=False
        ),
    ] = None,
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help="Kill the script after this many seconds (exit 124). [default: 300; run.timeout]",
        show_default=False,
    ),
    memory: str | None = typer.Option(
        None,
        "--memory",
        help="Memory limit, no swap beyond it (e.g. 512m, 2g). [default: 2g; run.memory]",
        show_default=False,
    ),
    cpus: float | None = typer.Option(
        None, "--cpus", help="CPU limit, e.g. 1.5. [default: none; run.cpus]", show_default=False
    ),
    network: str | None = typer.Option(
        None,
        "--network",
        help="none (no network at all) or host. [default: none; run.network]",
        show_default=False,
    ),
    isolation: str | None = typer.Option(
        None,
        "--isolation",
        help="runc (the host's kernel) or gvisor (gVisor's user-space kernel; see "
        "docs/usage.md, Isolation). [default: runc; run.isolation]",
        show_default=False,
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Image to run in. [default: ROSCOE_RUNNER_IMAGE, else the pinned runner image]",
        show_default=False,
    ),
    env: Annotated[
        list[str] | None,
        typer.Option(
            "-e",
            "--env",
            help="KEY=VALUE for the script, or KEY to copy it from here. Repeatable.",
            show_default=False,
        ),
    ] = None,
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print the run record as JSON on stdout when done (script output goes to stderr).",
    ),
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        help="Workspace root holding projects/ and Tools/. [env: ROSCOE_WORKSPACE]",
        show_default=False,
    ),
) -> None:
    """Run SCRIPT from Tools/ against the case folder CASE, in a fresh container.

    The script sees its case read-write at /data (its working directory) and
    Tools/ read-only at /tools: nothing else from this machine. It runs as your
    uid:gid (1000:1000 when roscoe runs as root), with no capabilities, a
    read-only root file system, a writable /tmp, no network unless --network
    host, and the memory, CPU and time limits. An absent image is pulled
    first. Its stdout and stderr stream here live and are saved with the run
    record (`roscoe runs show ID`). The container is removed afterwards,
    whatever happens.

    Scripts: .py runs with the image's python3, .sh with sh; other kinds are
    refused (exit 2). roscoe's options go before CASE; everything after SCRIPT
    (after an optional `--`) goes to the script untouched.

    Exit code: the script's own; 124 timed out; 137 killed at the memory limit;
    130 interrupted (Ctrl-C, SIGTERM); 125 the engine failed during the run;
    2 bad case, script or option; 4 image absent and not pullable; 5 the
    isolation asked for (gVisor) is not available on the engine.

    Examples:
      roscoe run demo-case create_file_inventory.py -- --format md
      roscoe run --timeout 60 --memory 512m demo-case inventory.py -- --format csv
      roscoe run -e API_TOKEN --json demo-case check.sh
      roscoe run --isolation gvisor demo-case create_file_inventory.py
    """
    from roscoe.config.parse import parse_env
    from roscoe.engine import connect_url
    from roscoe.images.choice import choose_image
    from roscoe.runs.execute import execute, plan_run
    from roscoe.runs.spec import RunSpec
    from roscoe.runs.workspace import Workspace

    st = state(ctx)
    settings = st.settings
    choice = choose_image(settings, image)
    script_args = list(args or [])
    if script_args[:1] == ["--"]:  # options stop at CASE, so `--` reaches us: drop one
        script_args = script_args[1:]
    spec = RunSpec(
        case=case,
        script=script,
        args=script_args,
        image=choice.ref,
        timeout=settings.get("run.timeout", timeout),
        memory=settings.get("run.memory", memory),
        cpus=settings.get("run.cpus", cpus),
        network=settings.get("run.network", network),
        env=parse_env(env or [], os.environ),
        isolation=settings.get("run.isolation", isolation),
        gvisor_host=settings.get("run.gvisor_host"),
    )
    where = Workspace.from_settings(settings, workspace)
    plan_run(where, spec)  # refuse bad input before connecting to the engine at all
    forward = _Forward(sys.stdout.buffer, sys.stderr.buffer, merge=json_output)
    cancel = threading.Event()
    engine = st.engine()
    with _CancelOnSignals(cancel):
        try:
            record = execute(
                engine, where, spec, on_output=forward, cancel=cancel, connect=connect_url
            )
        except ImageError:
            # The image is only looked at when creating the container failed, so the usual
            # run costs no extra call.
            if engine.image_inspect(choice.ref) is not None:
                raise
            record = None
    if record is None:
        # Absent: pull it (with progress on stderr), outside the signal handlers, so Ctrl-C
        # stops the pull and nothing runs; then go again.
        from roscoe.cli.progress import PullView
        from roscoe.images.ensure import ensure_image

        if cancel.is_set():  # Ctrl-C came while the container was being created
            _interrupted(f"interrupted before pulling {choice.ref}; nothing ran")
        try:
            with PullView(choice.ref, quiet=st.quiet) as view:
                ensure_image(engine, choice, "missing", view)
        except KeyboardInterrupt:
            _interrupted(f"interrupted while pulling {choice.ref}; nothing ran")
        with _CancelOnSignals(cancel):
            record = execute(
                engine, where, spec, on_output=forward, cancel=cancel, connect=connect_url
            )
    if record.message:
        sys.stderr.write(f"roscoe: {record.message} (run {record.id})\n")
        sys.stderr.flush()
    if json_output:
        from roscoe.cli import render

        render.print_json(record.to_json())
    raise typer.Exit(record.exit_code or 0)


def _interrupted(message: str) -> NoReturn:
    sys.stderr.write(f"roscoe: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(ExitCode.INTERRUPTED)


class _Forward:
    """Raw bytes to our stdout / stderr as they arrive; a closed pipe stops only that stream."""

    def __init__(self, out: IO[bytes], err: IO[bytes], merge: bool):
        self._targets: dict[str, IO[bytes] | None] = {
            "stdout": err if merge else out,
            "stderr": err,
        }

    def __call__(self, name: str, data: bytes) -> None:
        target = self._targets.get(name)
        if target is None:
            return
        try:
            target.write(data)
            target.flush()
        except (BrokenPipeError, ValueError):
            self._targets[name] = None


class _CancelOnSignals:
    """SIGINT and SIGTERM set `cancel` (execute then stops the container); restored after."""

    def __init__(self, cancel: threading.Event):
        self._cancel = cancel
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self._cancel.set()

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)
