"""Run one script against one case in a fresh, locked-down container, and record the run.

The order matters: everything the user named is validated before any container exists;
the container is created with every limit, attached to before it starts (so no output is
lost), watched against the deadline and the cancel event, and removed in `finally`.
Output is written to the run's output.log as it arrives and handed to `on_output`; it is
never accumulated in memory, so binary or huge output is just bytes passing through.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from roscoe import __version__
from roscoe.constants import (
    LABEL_DEADLINE,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_RUN_ID,
    LABEL_STARTED,
    LABEL_VERSION,
    MANAGED_BY_VALUE,
    ExitCode,
)
from roscoe.envvars import ENV_NAME
from roscoe.errors import RoscoeError, UsageError
from roscoe.host import container_user, selinux_enforcing
from roscoe.runs.records import (
    OUTPUT_FILE,
    RunRecord,
    check_run_id,
    hand_over,
    make_run_dir,
    new_run_id,
    now_iso,
    write_record,
)
from roscoe.runs.spec import RunSpec
from roscoe.settings import parse_size
from roscoe.workspace import Workspace, interpreter

if TYPE_CHECKING:
    from roscoe.engine import Engine

log = logging.getLogger("roscoe.runs")

OnOutput = Callable[[str, bytes], None]

DATA_MOUNT = "/data"
TOOLS_MOUNT = "/tools"
PIDS_LIMIT = 512
TMPFS = {"/tmp": "rw,nosuid,nodev,mode=1777"}  # noqa: S108 - the container's own /tmp
BASE_ENV = {
    "HOME": "/tmp",  # noqa: S108 - the only writable place besides /data
    "PYTHONUNBUFFERED": "1",  # output shows up live, not when a buffer fills
    "PYTHONDONTWRITEBYTECODE": "1",  # /tools is read-only
}
# If roscoe is SIGKILLed it cannot kill the container at the timeout; coreutils `timeout`
# inside the container does, this long after. gc may sweep a container still running
# DEADLINE_SLACK_S after that.
BACKSTOP_GRACE_S = 3.0
DEADLINE_SLACK_S = 30
POLL_S = 0.05  # how often the watcher looks at the cancel event
SETTLE_S = 0.5  # how long to look for "exited" after the output stream ends, before waiting
KILL_WAIT_S = 20.0  # after a kill, how long the engine may take to report the exit
NETWORKS = ("none", "host")
MIN_CPUS = 0.01  # the engines refuse less (docker: "Range of CPUs is from 0.01 to ...")
# The most output saved to output.log. Past it the output still streams to the caller (the
# terminal, the service's client) but the file stops growing, so a runaway script cannot fill
# the disk; the record says saved_output_truncated. Tens of MB are saved whole.
MAX_SAVED_OUTPUT = 256 << 20
TRUNCATED_NOTE = b"\n[roscoe: output truncated here; only the first %d bytes were saved]\n"


@dataclass(frozen=True)
class RunPlan:
    """A validated spec: host paths, the command line and the limits, ready for the engine."""

    run_id: str
    case_dir: Path
    script_path: Path
    entrypoint: list[str]
    command: list[str]
    binds: list[str]
    env: dict[str, str]
    user: str
    memory_bytes: int
    labels: dict[str, str] = field(default_factory=dict)


def plan_run(workspace: Workspace, spec: RunSpec, run_id: str | None = None) -> RunPlan:
    """Check everything the caller named and build the container's shape. UsageError (2)."""
    case_dir = workspace.case_dir(spec.case)
    script = workspace.script_path(spec.script)
    if not spec.timeout or not math.isfinite(spec.timeout) or spec.timeout <= 0:
        raise UsageError(f"the timeout must be a positive number of seconds, not {spec.timeout}")
    try:
        memory_bytes = parse_size(spec.memory)
    except ValueError as exc:
        raise UsageError(f"invalid memory limit: {exc}") from exc
    if spec.cpus is not None and not (math.isfinite(spec.cpus) and spec.cpus >= MIN_CPUS):
        raise UsageError(f"--cpus must be at least {MIN_CPUS:g}, not {spec.cpus:g}")
    if spec.network not in NETWORKS:
        raise UsageError(f"unknown network '{spec.network}'", hint="use none or host")
    for key in spec.env:
        if not ENV_NAME.fullmatch(key):
            raise UsageError(f"'{key}' is not a valid environment variable name")
    if any("\x00" in arg for arg in spec.args):
        raise UsageError("a script argument contains a NUL byte")

    case_host = workspace.host_path(case_dir)
    tools_host = workspace.host_path(workspace.tools_dir.resolve())
    relabel = ",z" if selinux_enforcing() else ""
    for path in (case_host, tools_host):
        if ":" in str(path):
            raise UsageError(
                f"{path} contains ':', which the engines cannot bind-mount",
                hint="rename the folder, or move the workspace",
            )
    backstop = f"{spec.timeout + BACKSTOP_GRACE_S:g}"
    return RunPlan(
        run_id=check_run_id(run_id) if run_id else new_run_id(),
        case_dir=case_dir,
        script_path=script,
        entrypoint=["timeout"],
        command=[
            "-s",
            "KILL",
            backstop,
            *interpreter(script),
            workspace.in_container(script),
            *spec.args,
        ],
        binds=[f"{case_host}:{DATA_MOUNT}:rw{relabel}", f"{tools_host}:{TOOLS_MOUNT}:ro{relabel}"],
        env={**BASE_ENV, **spec.env},
        user=spec.user or default_user(),
        memory_bytes=memory_bytes,
    )


def default_user() -> str:
    """The caller's uid:gid, or taskrunner's under root (`roscoe.host`): never root inside."""
    uid, gid = container_user()
    return f"{uid}:{gid}"


def run_labels(run_id: str, started: float, timeout: float) -> dict[str, str]:
    deadline = int(started + math.ceil(timeout) + BACKSTOP_GRACE_S + DEADLINE_SLACK_S)
    return {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_KIND: "run",
        LABEL_RUN_ID: run_id,
        LABEL_OWNER_PID: str(os.getpid()),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_STARTED: str(int(started)),
        LABEL_DEADLINE: str(deadline),
        LABEL_VERSION: __version__,
    }


def container_name(run_id: str) -> str:
    return f"roscoe-run-{run_id}"


def classify(
    exit_code: int | None,
    *,
    timed_out: bool,
    interrupted: bool,
    oom_killed: bool,
    timeout: float,
    memory: str,
) -> tuple[str, int, str | None]:
    """(status, roscoe's exit code, a line for the user) from how the container ended.

    Exit 137 under a memory limit, with no timeout or interrupt, counts as an OOM kill even
    when the engine says OOMKilled=false (podman always does).
    """
    if interrupted:
        return "interrupted", ExitCode.INTERRUPTED, "interrupted: the container was stopped"
    if timed_out:
        return "timed_out", ExitCode.TIMEOUT, f"timed out after {timeout:g} s"
    if oom_killed or exit_code == ExitCode.OOM:
        return (
            "oom_killed",
            ExitCode.OOM,
            f"killed at the memory limit ({memory}): probably out of memory",
        )
    if exit_code == 0:
        return "succeeded", 0, None
    if exit_code is None:
        return "error", ExitCode.ENGINE_DURING_RUN, "the engine reported no exit code"
    return "failed", exit_code, None


class _Sink:
    """Saves output to output.log (0600, at most MAX_SAVED_OUTPUT bytes) and hands it all on;
    counts bytes; keeps none in memory."""

    def __init__(self, path: Path, on_output: OnOutput | None):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        hand_over(path)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._on_output = on_output
        self.bytes = 0
        self.truncated = False

    def write(self, name: str, data: bytes) -> None:
        room = MAX_SAVED_OUTPUT - self.bytes
        if room > 0:
            self._file.write(data[:room])
        if not self.truncated and len(data) > room:
            self.truncated = True
            self._file.write(TRUNCATED_NOTE % MAX_SAVED_OUTPUT)
        self.bytes += len(data)
        if self._on_output is not None:
            try:
                self._on_output(name, data)
            except Exception as exc:  # e.g. a closed pipe: keep saving, stop forwarding
                log.debug("on_output failed, output is still saved: %s", exc)
                self._on_output = None

    def close(self) -> None:
        self._file.close()


@dataclass
class _Follow:
    """What the follower thread learned: the container's final state, or the error."""

    done: threading.Event = field(default_factory=threading.Event)
    state: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


def _follow(engine: Engine, container_id: str, stream: Any, sink: _Sink, out: _Follow) -> None:
    try:
        for name, data in stream:
            sink.write(name, data)
        state = engine.run_state(container_id)
        # The stream can end a moment before the engine marks the container exited (podman);
        # a few quick looks cost less than podman's wait call (~250 ms).
        settle = time.monotonic() + SETTLE_S
        while state.get("running") and time.monotonic() < settle:
            time.sleep(0.02)
            state = engine.run_state(container_id)
        if state.get("running"):  # the script closed its output but goes on running
            engine.run_wait(container_id)
            state = engine.run_state(container_id)
        out.state = state
    except BaseException as exc:
        out.error = exc
    finally:
        out.done.set()


def _watch(done: threading.Event, deadline: float, cancel: threading.Event | None) -> str | None:
    """Wait for the run to end; "timeout" or "cancel" when it must be stopped instead."""
    while True:
        left = deadline - time.monotonic()
        if cancel is not None and cancel.is_set():
            return "cancel"
        if left <= 0:
            return "timeout"
        # Without a cancel event there is nothing to poll: sleep until done or the deadline.
        if done.wait(min(left, POLL_S) if cancel is not None else left):
            return None


def execute(
    engine: Engine,
    workspace: Workspace,
    spec: RunSpec,
    *,
    on_output: OnOutput | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """Run `spec` and return its record (also written to <data dir>/runs/<id>/run.json).

    Raises before any container exists: UsageError (2) for a bad case, script, id or
    limit; ImageError (4) when the image is absent; EngineError (125) when the container
    cannot be created. Once the container exists, nothing is raised: an engine failure
    gives a record with status "error", exit_code 125 and the engine's reason in
    `message`. Setting `cancel` (from any thread) stops the container: status
    "interrupted". The container is removed in every case. Never prints, never exits,
    installs no signal handlers; safe to call from many threads at once.
    """
    plan = plan_run(workspace, spec, run_id)
    started_wall = time.time()
    started_at = now_iso()
    container_id = engine.run_create(
        name=container_name(plan.run_id),
        image=spec.image,
        entrypoint=plan.entrypoint,
        command=plan.command,
        user=plan.user,
        workdir=DATA_MOUNT,
        env=plan.env,
        labels=run_labels(plan.run_id, started_wall, spec.timeout),
        binds=plan.binds,
        network=spec.network,
        memory_bytes=plan.memory_bytes,
        cpus=spec.cpus,
        pids_limit=PIDS_LIMIT,
        tmpfs=TMPFS,
        userns="keep-id" if engine.podman_rootless() else None,
    )
    record = RunRecord(
        id=plan.run_id,
        case=spec.case,
        script=spec.script,
        args=list(spec.args),
        image=spec.image,
        engine=engine.kind,
        started_at=started_at,
    )
    try:
        record = _supervise(
            engine, spec, plan, container_id, record, on_output=on_output, cancel=cancel
        )
    finally:
        try:
            engine.run_remove(container_id)
        except RoscoeError as exc:
            # gc removes it later (it is labelled); the outcome of the run still stands.
            log.warning("run %s: %s", plan.run_id, exc.message)
    write_record(record)
    return record


def _supervise(
    engine: Engine,
    spec: RunSpec,
    plan: RunPlan,
    container_id: str,
    record: RunRecord,
    *,
    on_output: OnOutput | None,
    cancel: threading.Event | None,
) -> RunRecord:
    where = make_run_dir(plan.run_id)
    write_record(record)
    sink = _Sink(where / OUTPUT_FILE, on_output)
    clock = time.monotonic()
    stopped_for: str | None = None
    state: dict[str, Any] = {}
    try:
        stream = engine.run_attach(container_id)
        try:
            if cancel is not None and cancel.is_set():
                # Cancelled before it started (e.g. Ctrl-C while creating): never start it.
                raise _CancelledBeforeStart
            engine.run_start(container_id)
            clock = time.monotonic()
            follow = _Follow()
            threading.Thread(
                target=_follow,
                args=(engine, container_id, stream, sink, follow),
                name=f"roscoe-run-{plan.run_id}",
                daemon=True,
            ).start()
            stopped_for = _watch(follow.done, clock + spec.timeout, cancel)
            if stopped_for is not None:
                engine.run_kill(container_id)
                if not follow.done.wait(KILL_WAIT_S):
                    raise RoscoeError(
                        f"the container did not stop within {KILL_WAIT_S:g} s of being killed",
                        exit_code=ExitCode.ENGINE_DURING_RUN,
                    )
            if follow.error is not None:
                raise follow.error
            state = follow.state
        finally:
            stream.close()
        status, code, message = classify(
            state.get("exit_code"),
            timed_out=stopped_for == "timeout",
            interrupted=stopped_for == "cancel",
            oom_killed=bool(state.get("oom_killed")),
            timeout=spec.timeout,
            memory=spec.memory,
        )
    except _CancelledBeforeStart:
        stopped_for = "cancel"
        status, code, message = classify(
            None,
            timed_out=False,
            interrupted=True,
            oom_killed=False,
            timeout=spec.timeout,
            memory=spec.memory,
        )
        message = "interrupted before the script started"
    except RoscoeError as exc:
        status, code, message = "error", ExitCode.ENGINE_DURING_RUN, exc.message
    except Exception as exc:  # the engine's transport failing mid-stream, for one
        status, code, message = "error", ExitCode.ENGINE_DURING_RUN, f"engine failure: {exc}"
    finally:
        sink.close()
    record.status = status
    record.exit_code = int(code)
    record.message = message
    record.timed_out = stopped_for == "timeout"
    record.image_digest = state.get("image_id")
    record.finished_at = now_iso()
    record.duration_s = round(time.monotonic() - clock, 3)
    record.output_bytes = sink.bytes
    record.saved_output_truncated = sink.truncated
    return record


class _CancelledBeforeStart(Exception):
    """The cancel event was set before the container was started."""
