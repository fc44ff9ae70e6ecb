"""Watching a started run: its output to the sink, the deadline and the cancel event, how it
ended (classified, with what the launcher reported), and its record filled in from that.

`supervise` is called by runs.execute once the container exists; it never raises for the
engine's failures: they become the record's status.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from roscoe.errors import ExitCode, RoscoeError
from roscoe.runs.outcome import Ending, RunStatus, classify, engine_failure
from roscoe.runs.output import OnOutput, OutputSink
from roscoe.runs.records import OUTPUT_FILE, RunRecord, now_iso
from roscoe.runs.report import LaunchReport, launcher_started, read_report

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine, RunOutput, RunState
    from roscoe.runs.plan import RunPlan
    from roscoe.runs.spec import RunSpec

POLL_S = 0.05  # how often the watcher looks at the cancel event
SETTLE_S = 0.5  # how long to look for "exited" after the output stream ends, before waiting
KILL_WAIT_S = 20.0  # after a kill, how long the engine may take to report the exit
STOP_GRACE_S = 3.0  # after asking the launcher to stop, how long before the kill


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


def _stop(engine: RunEngine, container_id: str, report_dir: Path, follow: _Follow) -> None:
    """Stop a running container. The launcher, when it is up, is asked first (SIGUSR1): it
    kills the script and writes what it used; if it has not ended the container soon after,
    or was never there, the container is killed outright."""
    if launcher_started(report_dir):
        engine.run_kill(container_id, signal="USR1")
        if follow.done.wait(STOP_GRACE_S):
            return
    engine.run_kill(container_id)
    if not follow.done.wait(KILL_WAIT_S):
        raise RoscoeError(
            f"the container did not stop within {KILL_WAIT_S:g} s of being killed",
            exit_code=ExitCode.ENGINE_DURING_RUN,
        )


@dataclass(frozen=True)
class Folders:
    run: Path  # the run's folder: run.json, output.log
    report: Path  # the launcher's folder, mounted in the container


def supervise(
    engine: RunEngine,
    spec: RunSpec,
    plan: RunPlan,
    container_id: str,
    record: RunRecord,
    *,
    folders: Folders,
    on_output: OnOutput | None,
    cancel: threading.Event | None,
) -> RunRecord:
    sink = OutputSink(folders.run / OUTPUT_FILE, on_output)
    clock = time.monotonic()
    stopped_for: str | None = None
    state: RunState | None = None
    report: LaunchReport | None = None
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
                _stop(engine, container_id, folders.report, follow)
            if follow.error is not None:
                raise follow.error
            state = follow.state
        finally:
            stream.close()
        report = read_report(folders.report)
        ending = Ending(
            state.exit_code if state is not None else None,
            timed_out=stopped_for == "timeout",
            interrupted=stopped_for == "cancel",
            oom_killed=state is not None and state.oom_killed,
            report=report,
            launched=launcher_started(folders.report),
            isolation=spec.isolation,
        )
        status, code, message = classify(ending, timeout=spec.timeout, memory=spec.memory)
    except _CancelledBeforeStart:
        status, code = RunStatus.INTERRUPTED, ExitCode.INTERRUPTED
        message = "interrupted before the script started"
    except Exception as exc:  # the engine failing, or its socket
        status, code, message = engine_failure(exc)
    finally:
        sink.close()
    record.status, record.exit_code, record.message = status, int(code), message
    record.timed_out = status == RunStatus.TIMED_OUT
    record.image_digest = state.image_id if state is not None else None
    record.finished_at = now_iso()
    record.duration_s = round(time.monotonic() - clock, 3)
    record.output_bytes, record.saved_output_truncated = sink.bytes, sink.truncated
    if report is not None:
        record.peak_memory_bytes = report.max_rss_bytes
        record.cpu_user_s, record.cpu_system_s = report.user_s, report.system_s
    return record


class _CancelledBeforeStart(Exception):
    """The cancel event was set before the container was started."""
