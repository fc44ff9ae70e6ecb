"""The backend of `roscoe mcp` (stdio): runs in this process, through the run core, exactly as
`roscoe run` makes them (same workspace and settings, same image choice, same hardening), so
no runner is needed.

Runs go in threads of their own, at most `concurrency` at once; up to `queue` more wait in
line, and beyond that a run is refused (the agent is told to wait or cancel one). A run
belongs to this process: if it exits, the run core's labels let `roscoe gc` sweep what is
left, as after a killed `roscoe run`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from roscoe.config.settings import RunLimits, default
from roscoe.errors import ExitCode, RoscoeError, UsageError
from roscoe.mcp.backend import LOCAL_USER, Principal, RunAsk, RunView
from roscoe.runs.outcome import RunStatus
from roscoe.runs.records import RunRecord, load_run, new_run_id, now_iso, read_output, write_record
from roscoe.runs.spec import RunSpec

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine
    from roscoe.images.choice import ImageChoice
    from roscoe.runs.isolation import Connect
    from roscoe.runs.workspace import Workspace

# After cancel_run kills a container: how long it may take to be reported over.
CANCEL_WAIT_S = 30.0
# How much of a run's output under way is kept in memory (get_run shows its end).
LIVE_TAIL_BYTES = 256 * 1024
# A caller may ask for at most this long (or the configured default, when that is longer).
MAX_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class LocalLimits:
    """What a run does not choose: the limits `roscoe run` would apply, and the slots."""

    run: RunLimits = field(default_factory=RunLimits)
    env: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = default("service.concurrency")
    queue: int = default("service.queue")


@dataclass
class _Live:
    """A run of this process while it is queued or running."""

    spec: RunSpec
    record: RunRecord
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False  # cancel_run asked for it (not a shutdown)
    last_line: str = ""
    final: dict[str, Any] | None = None
    # The end of the output so far: output.log is written through a buffer, so a run under
    # way is read from here.
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, _stream: str, data: bytes) -> None:
        with self.lock:
            self.total += len(data)
            self.tail += data
            if len(self.tail) > LIVE_TAIL_BYTES:
                del self.tail[: len(self.tail) - LIVE_TAIL_BYTES]
        lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
        if lines:
            self.last_line = lines[-1]

    def output(self, tail_bytes: int) -> tuple[bytes, bool]:
        with self.lock:
            kept = bytes(self.tail[-tail_bytes:])
            return kept, self.total > len(kept)


class LocalBackend:
    def __init__(
        self,
        connect: Callable[[], RunEngine],
        workspace: Workspace,
        image: ImageChoice,
        limits: LocalLimits,
        connect_url: Connect | None = None,
    ):
        self._connect = connect
        self._connect_url = connect_url
        self.workspace = workspace
        self.image = image
        self.limits = limits
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._line: deque[_Live] = deque()
        self._running = 0
        self._closed = False

    # -- discovery -------------------------------------------------------------------------
    def default_timeout(self) -> float:
        return float(self.limits.run.timeout)

    def max_timeout(self) -> float:
        return max(MAX_TIMEOUT_S, float(self.limits.run.timeout))

    def list_cases(self, who: Principal) -> list[dict[str, Any]]:
        from roscoe.runs.catalog import list_cases

        return [case.to_json() for case in list_cases(self.workspace)]

    def list_tools(self, who: Principal) -> list[dict[str, Any]]:
        from roscoe.runs.catalog import list_tools

        return [tool.to_json() for tool in list_tools(self.workspace)]

    # -- runs ------------------------------------------------------------------------------
    def start(self, ask: RunAsk, who: Principal) -> RunView:
        from roscoe.runs.host import user_name
        from roscoe.runs.plan import plan_run

        run = self.limits.run
        spec = RunSpec.of(
            ask.case,
            ask.script,
            list(ask.args),
            self.image.ref,
            limits=replace(run, timeout=ask.timeout or run.timeout),
            env=dict(self.limits.env),
            requested_by=f"mcp:{user_name()}",
            preview=ask.preview,
        )
        plan_run(self.workspace, spec)  # refuse a bad case or script before anything waits
        record = RunRecord(
            id=new_run_id(),
            case=spec.case,
            script=spec.script,
            args=list(spec.args),
            image=spec.image,
            status=RunStatus.QUEUED,
        )
        live = _Live(spec, record)
        with self._lock:
            if self._closed:
                raise RoscoeError("roscoe mcp is shutting down and takes no more runs")
            if self._running >= self.limits.concurrency and len(self._line) >= self.limits.queue:
                raise UsageError(
                    f"{self._running} runs in flight and {len(self._line)} waiting",
                    hint="wait for one to end (get_run), or stop one (cancel_run), then again",
                )
            self._live[record.id] = live
            self._line.append(live)
            self._dispatch()
        return self._snapshot(live)

    def wait(self, run_id: str, seconds: float) -> RunView:
        live = self._live.get(run_id)
        if live is None:
            return self.view(run_id, LOCAL_USER, 0)
        live.done.wait(seconds)
        return self._snapshot(live)

    def view(self, run_id: str, who: Principal, tail_bytes: int) -> RunView:
        live = self._live.get(run_id)
        if live is not None and live.final is None:
            view = self._snapshot(live)
            output, cut = live.output(tail_bytes) if tail_bytes > 0 else (b"", False)
        else:
            view = RunView(load_run(run_id).to_json())  # UsageError when there is none
            output, cut = (
                read_output(run_id, tail_bytes=tail_bytes) if tail_bytes > 0 else (b"", False)
            )
        view.output = output.decode("utf-8", errors="replace")
        view.output_truncated = cut
        return view

    def cancel(self, run_id: str, who: Principal) -> RunView:
        with self._lock:
            live = self._live.get(run_id)
            queued = live is not None and live in self._line
            if queued and live is not None:
                self._line.remove(live)
                self._live.pop(run_id, None)
        if live is None:
            record = load_run(run_id)  # UsageError when there is no such run
            if record.status in (RunStatus.RUNNING, RunStatus.QUEUED):
                raise UsageError(
                    f"run {run_id} was not started by this roscoe mcp, so it cannot stop it",
                    hint="`roscoe runs show` says where it runs",
                )
            raise UsageError(
                f"run {run_id} is already over ({record.status})",
                hint="only a queued or running run can be cancelled",
            )
        live.cancelled = True
        if queued:
            self._end_unstarted(
                live, RunStatus.CANCELLED, ExitCode.INTERRUPTED, "cancelled before it started"
            )
        else:
            live.cancel.set()
            live.done.wait(CANCEL_WAIT_S)
        return self.view(run_id, who, 0)

    def close(self) -> list[str]:
        """Refuse new runs, cancel the queued ones and stop the running ones (shutdown)."""
        with self._lock:
            self._closed = True
            line = list(self._line)
            self._line.clear()
            running = [live for live in self._live.values() if live not in line]
            for live in line:
                self._live.pop(live.record.id, None)
        for live in line:
            self._end_unstarted(
                live,
                RunStatus.CANCELLED,
                ExitCode.INTERRUPTED,
                "cancelled before it started: shutdown",
            )
        for live in running:
            live.cancel.set()
        for live in running:
            live.done.wait(CANCEL_WAIT_S)
        return [live.record.id for live in line + running]

    # -- carrying runs out -----------------------------------------------------------------
    def _dispatch(self) -> None:
        """Start queued runs while slots are free (the lock is held)."""
        while self._line and self._running < self.limits.concurrency:
            live = self._line.popleft()
            self._running += 1
            live.record.status = RunStatus.RUNNING
            threading.Thread(
                target=self._carry_out,
                args=(live,),
                name=f"roscoe-mcp-{live.record.id}",
                daemon=True,
            ).start()

    def _carry_out(self, live: _Live) -> None:
        from roscoe.runs.start import start_run

        final: dict[str, Any] | None = None
        try:
            engine = self._connect()
            try:
                # An absent image is pulled first, as `roscoe run` does (without the bar).
                record = start_run(
                    engine,
                    self.workspace,
                    live.spec,
                    choice=self.image,
                    on_output=live.feed,
                    cancel=live.cancel,
                    run_id=live.record.id,
                    connect=self._connect_url,
                )
            finally:
                engine.close()
            if live.cancelled and record.status == RunStatus.INTERRUPTED:
                # The run core calls every stop "interrupted"; one asked for is "cancelled".
                record.status, record.message = RunStatus.CANCELLED, "cancelled (cancel_run)"
                write_record(record)
            final = record.to_json()
        except RoscoeError as exc:
            message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
            final = self._failed(live, int(exc.exit_code), message)
        except Exception as exc:  # a bug must cost one run, never the server
            final = self._failed(live, ExitCode.ENGINE_DURING_RUN, f"unexpected {exc!r}")
        finally:
            live.final = final
            live.done.set()
            with self._lock:
                self._live.pop(live.record.id, None)
                self._running -= 1
                self._dispatch()

    def _failed(self, live: _Live, code: int, message: str) -> dict[str, Any]:
        record = live.record
        record.status, record.exit_code, record.message = RunStatus.ERROR, code, message
        record.finished_at = now_iso()
        with contextlib.suppress(OSError, RoscoeError):  # the record is a courtesy here
            write_record(record)
        return record.to_json()

    def _end_unstarted(self, live: _Live, status: RunStatus, code: int, message: str) -> None:
        record = live.record
        record.status, record.exit_code, record.message = status, int(code), message
        record.finished_at = now_iso()
        write_record(record)
        live.final = record.to_json()
        live.done.set()

    def _snapshot(self, live: _Live) -> RunView:
        record = live.final if live.final is not None else live.record.to_json()
        return RunView(dict(record), last_line=live.last_line)
