"""Run one script against one case in a fresh, locked-down container, and record the run.

The order matters: everything the user named is validated before any container exists;
the container is created with every limit, attached to before it starts (so no output is
lost), watched against the deadline and the cancel event, and removed in `finally`.
Output is written to the run's output.log as it arrives and handed to `on_output`; it is
never accumulated in memory, so binary or huge output is just bytes passing through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from roscoe.errors import ExitCode, RoscoeError
from roscoe.runs.records import (
    OUTPUT_FILE,
    RunRecord,
    make_run_dir,
    now_iso,
    write_record,
)
from roscoe.runs.spec import RunSpec
from roscoe.runs.tracking import Tracker, file_digest
from roscoe.runs.workspace import Workspace

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine, RunOutput, RunState

from roscoe.runs.outcome import RunStatus, classify
from roscoe.runs.output import OnOutput, OutputSink
from roscoe.runs.plan import (
    DATA_MOUNT,
    PIDS_LIMIT,
    TMPFS,
    RunPlan,
    check_cpus,
    container_name,
    plan_run,
    run_labels,
)

log = logging.getLogger("roscoe.runs")

POLL_S = 0.05  # how often the watcher looks at the cancel event
SETTLE_S = 0.5  # how long to look for "exited" after the output stream ends, before waiting
KILL_WAIT_S = 20.0  # after a kill, how long the engine may take to report the exit


@dataclass
class _Follow:
    """What the follower thread learned: the container's final state, or the error."""

    done: threading.Event = field(default_factory=threading.Event)
    state: RunState | None = None  # None: the container was gone
    error: BaseException | None = None


def _follow(
    engine: RunEngine, container_id: str, stream: RunOutput, sink: OutputSink, out: _Follow
) -> None:
    try:
        for name, data in stream:
            sink.write(name, data)
        state = engine.run_state(container_id)
        # The stream can end a moment before the engine marks the container exited (podman);
        # a few quick looks cost less than podman's wait call (~250 ms).
        settle = time.monotonic() + SETTLE_S
        while state is not None and state.running and time.monotonic() < settle:
            time.sleep(0.02)
            state = engine.run_state(container_id)
        if state is not None and state.running:
            # The script closed its output but goes on running.
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
    engine: RunEngine,
    workspace: Workspace,
    spec: RunSpec,
    *,
    on_output: OnOutput | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """Run `spec` and return its record (also written to <data dir>/runs/<id>/run.json).

    Raises before any container exists: UsageError (2) for a bad case, script, id or
    limit (a CPU limit above the engine's CPU count too); ImageError (4) when the image is
    absent; EngineError (125) when the container
    cannot be created. Once the container exists, nothing is raised: an engine failure
    gives a record with status "error", exit_code 125 and the engine's reason in
    `message`. Setting `cancel` (from any thread) stops the container: status
    "interrupted". The container is removed in every case. Never prints, never exits,
    installs no signal handlers; safe to call from many threads at once.
    """
    plan = plan_run(workspace, spec, run_id)
    if spec.cpus is not None:  # only then: Podman takes ~0.3 s to answer /info
        check_cpus(spec.cpus, engine.cpu_count(), engine.kind)
    # The before-walk of the case goes on while the engine creates the container.
    tracker = Tracker(
        plan.case_dir, str(workspace.host_path(plan.case_dir)), enabled=spec.track_changes
    )
    tracker.begin()
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
    # Hashed once the container exists (it has not started): the before-walk thread has
    # imported hashlib meanwhile, while the engine was creating it.
    script_sha256 = file_digest(plan.script_path)
    record = RunRecord(
        id=plan.run_id,
        case=spec.case,
        script=spec.script,
        args=list(spec.args),
        image=spec.image,
        engine=engine.kind,
        started_at=started_at,
        requested_by=spec.requested_by,
        script_sha256=script_sha256,
        env_names=sorted(spec.env),
    )
    tracker.ready()  # the script must not start before the case has been walked
    # Records are fsynced (config.atomic): each write is made while the engine works anyway,
    # the first while it starts the container, the last while it removes it.
    where = make_run_dir(plan.run_id)
    first_record = _Later(write_record, replace(record))
    try:
        record = _supervise(
            engine,
            spec,
            plan,
            container_id,
            record,
            where=where,
            on_output=on_output,
            cancel=cancel,
        )
        if record.status != RunStatus.ERROR:  # the container has stopped: walk the case
            tracker.end()
        record.changes = tracker.result()
        first_record.wait()
        last_record = _Later(write_record, record)
    finally:
        try:
            engine.run_remove(container_id)
        except RoscoeError as exc:
            # gc removes it later (it is labelled); the outcome of the run still stands.
            log.warning("run %s: %s", plan.run_id, exc.message)
    last_record.wait()
    return record


class _Later:
    """A call made in a thread of its own, meanwhile; wait() waits for it and raises what it
    raised."""

    def __init__(self, call: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call, *args), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[..., object], *args: object) -> None:
        try:
            call(*args)
        except BaseException as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _supervise(
    engine: RunEngine,
    spec: RunSpec,
    plan: RunPlan,
    container_id: str,
    record: RunRecord,
    *,
    where: Path,
    on_output: OnOutput | None,
    cancel: threading.Event | None,
) -> RunRecord:
    sink = OutputSink(where / OUTPUT_FILE, on_output)
    clock = time.monotonic()
    stopped_for: str | None = None
    state: RunState | None = None
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
            state.exit_code if state is not None else None,
            timed_out=stopped_for == "timeout",
            interrupted=stopped_for == "cancel",
            oom_killed=state is not None and state.oom_killed,
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
        status, code, message = RunStatus.ERROR, ExitCode.ENGINE_DURING_RUN, exc.message
    except Exception as exc:  # the engine's transport failing mid-stream, for one
        status = RunStatus.ERROR
        code, message = ExitCode.ENGINE_DURING_RUN, f"engine failure: {exc}"
    finally:
        sink.close()
    record.status = status
    record.exit_code = int(code)
    record.message = message
    record.timed_out = stopped_for == "timeout"
    record.image_digest = state.image_id if state is not None else None
    record.finished_at = now_iso()
    record.duration_s = round(time.monotonic() - clock, 3)
    record.output_bytes = sink.bytes
    record.saved_output_truncated = sink.truncated
    return record


class _CancelledBeforeStart(Exception):
    """The cancel event was set before the container was started."""
