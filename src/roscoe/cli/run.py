"""`roscoe run CASE SCRIPT [ARGS]...`: one script, one case, one fresh container."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from roscoe.cli.context import state
from roscoe.cli.options import about, bracketed, json_option
from roscoe.config.settings import env_name

if TYPE_CHECKING:
    from roscoe.images.pull import OnPull
    from roscoe.runs.records import RunRecord


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
        help=about("Kill the script after this many seconds (exit 124).", "run.timeout"),
        show_default=False,
    ),
    memory: str | None = typer.Option(
        None,
        "--memory",
        help=about("Memory limit, no swap beyond it (e.g. 512m, 2g).", "run.memory"),
        show_default=False,
    ),
    cpus: float | None = typer.Option(
        None, "--cpus", help=about("CPU limit, e.g. 1.5.", "run.cpus"), show_default=False
    ),
    network: str | None = typer.Option(
        None,
        "--network",
        help=about("none (no network at all) or host.", "run.network"),
        show_default=False,
    ),
    isolation: str | None = typer.Option(
        None,
        "--isolation",
        help=about(
            "runc (the host's kernel) or gvisor (gVisor's user-space kernel; see "
            "docs/usage.md, Isolation).",
            "run.isolation",
        ),
        show_default=False,
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Image to run in. "
        + bracketed(f"default: {env_name('image')}, else the pinned runner image"),
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
    json_output: Annotated[
        bool,
        json_option(
            "Print the run record as JSON on stdout when done (script output goes to stderr)."
        ),
    ] = False,
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        help="Workspace root holding projects/ and Tools/. "
        + bracketed(f"env: {env_name('workspace')}"),
        show_default=False,
    ),
    track_changes: bool | None = typer.Option(
        None,
        "--track-changes/--no-track-changes",
        help="Record what the run created, modified and deleted in the case. "
        + bracketed("default: on; run.track_changes"),
        show_default=False,
    ),
    preview: bool = typer.Option(
        False,
        "--preview",
        help="Run on a copy of the case: it stays untouched until `roscoe runs apply ID`.",
    ),
) -> None:
    """Run SCRIPT from Tools/ against the case folder CASE, in a fresh container.

    The script sees its case read-write at /data (its working directory) and
    Tools/ read-only at /tools: nothing else from this machine. It runs as your
    uid:gid (1000:1000 when roscoe runs as root), with no capabilities, a
    read-only root file system, a writable /tmp, no network unless --network
    host, and the memory, CPU and time limits. An absent image is pulled
    first. Its stdout and stderr stream here live and are saved with the run
    record (`roscoe runs show ID`), which also lists what the run created,
    modified and deleted in the case, with sha256 hashes. The container is
    removed afterwards, whatever happens.

    With --preview the script works on a copy of the case (copy-on-write
    where the file system allows) and the case itself is not touched: the
    changes wait in the run's folder until `roscoe runs apply ID` lands them
    (refused if the case changed there meanwhile) or `roscoe runs discard ID`
    drops them. A preview that times out or is stopped keeps nothing.

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
      roscoe run --preview demo-case rename_scans.py
      roscoe run --isolation gvisor demo-case create_file_inventory.py
    """
    from roscoe.config.parse import parse_env
    from roscoe.config.settings import RunLimits
    from roscoe.engine import connect_url
    from roscoe.images.choice import choose_image
    from roscoe.runs.host import user_name
    from roscoe.runs.plan import plan_run
    from roscoe.runs.spec import RunSpec
    from roscoe.runs.start import start_run
    from roscoe.runs.workspace import Workspace

    st = state(ctx)
    settings = st.settings
    choice = choose_image(settings, image)
    script_args = list(args or [])
    if script_args[:1] == ["--"]:  # options stop at CASE, so `--` reaches us: drop one
        script_args = script_args[1:]
    limits = RunLimits.resolve(
        settings,
        timeout=timeout,
        memory=memory,
        cpus=cpus,
        network=network,
        track_changes=track_changes,
        isolation=isolation,
    )
    spec = RunSpec.of(
        case,
        script,
        script_args,
        choice.ref,
        limits=limits,
        env=parse_env(env or [], os.environ),
        requested_by=f"cli:{user_name()}",
        preview=preview,
    )
    where = Workspace.from_settings(settings, workspace)
    plan_run(where, spec)  # refuse bad input before connecting to the engine at all
    forward = _Forward(sys.stdout.buffer, sys.stderr.buffer, merge=json_output)
    cancel = threading.Event()
    engine = st.engine()
    signals = _CancelOnSignals(cancel)

    @contextlib.contextmanager
    def pulling(ref: str) -> Iterator[OnPull]:
        # Outside the signal handlers: Ctrl-C stops the pull, and nothing runs.
        from roscoe.cli.progress import PullView

        with signals.suspended(), PullView(ref, quiet=st.quiet) as view:
            yield view

    with signals:
        record = start_run(
            engine,
            where,
            spec,
            choice=choice,
            on_output=forward,
            cancel=cancel,
            pulling=pulling,
            connect=connect_url,
        )
    if record.message:
        sys.stderr.write(f"roscoe: {record.message} (run {record.id})\n")
        sys.stderr.flush()
    if record.preview:
        _preview_note(record)
    if json_output:
        from roscoe.cli import render

        render.print_json(record.to_json())
    raise typer.Exit(record.exit_code or 0)


def _preview_note(record: RunRecord) -> None:
    """What became of a preview's changes, on stderr."""
    from roscoe.cli import render

    found = record.changes or {}
    count = sum(len(found.get(key) or []) for key in ("created", "modified", "deleted"))
    if record.preview_state == "pending":
        render.info(
            f"preview: the case is untouched; {count} change(s) wait in run {record.id}: "
            f"`roscoe runs show {record.id}`, then `roscoe runs apply {record.id}` or "
            f"`roscoe runs discard {record.id}`"
        )
    else:
        render.info(f"preview: the run ended {record.status}; its changes were discarded")


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

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """The handlers that were there before, for a while (Ctrl-C raises KeyboardInterrupt)."""
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()
