"""Which runs go now, which wait, and who is next: first come, first served.

At most `concurrency` runs are carried out at once, each in a thread of its own; at most
`queue` more wait in line and cost nothing but a place in it. A run beyond both is refused
at once (the HTTP layer answers 429). Runs belong to the scheduler, not to a connection:
whoever asked may wait for the end, come back later, or go away.

Cancelling: a queued run leaves the line and is recorded `cancelled` without ever starting;
a running one has its cancel event set, and the run core kills and removes its container.
`close()` (shutdown) refuses new runs and cancels the queued ones; `interrupt_running()`
then stops what still runs (recorded `interrupted`, as the CLI's Ctrl-C).

The counters are read without taking the lock, so /health never waits behind a run.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

from roscoe.errors import (
    EngineError,
    ExitCode,
    ImageError,
    Interrupted,
    IsolationError,
    RoscoeError,
    UsageError,
)
from roscoe.service.live import QUEUED, LiveRun
from roscoe.service.metrics import Metrics
from roscoe.service.validate import RunRequest

INTERRUPTED_EXIT = 130
FAILED_EXIT = int(ExitCode.ENGINE_DURING_RUN)  # 125: a failure with no code of its own


class QueueFull(Exception):
    """Every run slot is busy and the waiting line is full."""


class ShuttingDown(Exception):
    """The service is stopping and takes no more runs."""


class RunBackend(Protocol):
    """What the service needs from the run core (the engine seam lies behind it)."""

    def new_run_id(self) -> str: ...

    def check(self, request: RunRequest) -> None:
        """Raise UsageError when the case or script cannot be run (before any container)."""

    def draft_record(self, request: RunRequest, run_id: str, status: str) -> dict[str, Any]:
        """The record of a run not over yet (queued, or running), as JSON."""

    def run(self, live: LiveRun) -> dict[str, Any]:
        """Carry out the run, feeding live.publish_output; its final record as JSON."""

    def save_record(self, record: dict[str, Any]) -> None:
        """Write a record (a cancelled run, a run that failed before it started)."""

    def list_runs(
        self, limit: int, shown: Callable[[str], bool] | None = None
    ) -> list[dict[str, Any]]:
        """The newest `limit` records, of the cases `shown` accepts (all when None)."""

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...

    def read_output(self, run_id: str, tail_bytes: int) -> tuple[bytes, bool] | None:
        """At most the last tail_bytes of the output, and whether it was cut; None: no run."""

    def apply_preview(self, run_id: str, caller: str) -> dict[str, Any]:
        """Land a pending preview's changes; UsageError when it is not one, Conflict."""
        ...

    def discard_preview(self, run_id: str, caller: str) -> dict[str, Any]: ...

    def list_cases(self) -> list[dict[str, Any]]: ...

    def list_tools(self) -> list[dict[str, Any]]: ...


class Log(Protocol):
    def __call__(self, event: str, level: str = "info", **fields: Any) -> None: ...


class Scheduler:
    def __init__(
        self,
        backend: RunBackend,
        concurrency: int,
        queue: int,
        log: Log,
        metrics: Metrics | None = None,
    ):
        if concurrency < 1 or queue < 0:
            raise ValueError("concurrency must be at least 1 and queue at least 0")
        self.backend = backend
        self.concurrency = concurrency
        self.queue = queue
        self.log = log
        self.metrics = metrics or Metrics()
        self._cond = threading.Condition()
        self._line: deque[LiveRun] = deque()
        self._live: OrderedDict[str, LiveRun] = OrderedDict()  # queued and running, by id
        self._running = 0
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def closed(self) -> bool:
        return self._closed

    def watchers(self) -> int:
        return sum(run.watchers for run in list(self._live.values()))

    def get(self, run_id: str) -> LiveRun | None:
        """The run while it is queued or running; None once it is over (read its record)."""
        return self._live.get(run_id)

    # -- taking runs -----------------------------------------------------------------------
    def submit(self, request: RunRequest) -> LiveRun:
        """Queue a run (started at once when a slot is free); QueueFull or ShuttingDown."""
        with self._cond:
            if self._closed:
                raise ShuttingDown
            if self._running >= self.concurrency and len(self._line) >= self.queue:
                self.metrics.refused += 1
                raise QueueFull
            live = LiveRun(self.backend.new_run_id(), request)
            self._live[live.id] = live
            self._line.append(live)
            self._dispatch()
        return live

    def _dispatch(self) -> None:
        """Start queued runs while slots are free (the lock is held)."""
        while self._line and self._running < self.concurrency and not self._closed:
            live = self._line.popleft()
            self._running += 1
            threading.Thread(
                target=self._carry_out, args=(live,), name=f"roscoe-service-{live.id}", daemon=True
            ).start()

    def _carry_out(self, live: LiveRun) -> None:
        request = live.request
        record: dict[str, Any] | None = None
        failure: tuple[int, str] | None = None
        code = FAILED_EXIT  # the record's exit code when the run fails before it starts
        started = time.monotonic()
        try:
            live.set_running(self.backend.draft_record(request, live.id, "running"))
            self.log(
                "run_started",
                run_id=live.id,
                case=request.case,
                script=request.script,
                args=list(request.args),
                env=sorted(request.env),  # names only: values never reach the log
                timeout=request.timeout,
                wait=request.wait,
            )
            record = self._finish_cancelled(live, self.backend.run(live))
        except Interrupted as exc:  # stopped before its container existed: nothing ran
            record = self._stopped_before_start(live, exc.message)
        except RoscoeError as exc:  # its own exit code in the record, as `roscoe run` exits
            failure, code = self._failure(live, exc), int(exc.exit_code)
        except Exception as exc:  # a bug must cost one run, never the service
            self.log("error", level="error", error=f"{type(exc).__name__}: {exc}", run_id=live.id)
            failure = (500, "internal error; see the service log (roscoe logs)")
        if record is None and failure is not None and not request.wait:
            # The caller already holds the id (202): leave a record that says what happened.
            record = self._failed_record(live, failure[1], code)
        if record is not None:  # logged before the answer: a client that reads the log
            self.log(  # after its answer finds the run's end there
                "run_finished",
                run_id=live.id,
                status=record.get("status"),
                exit_code=record.get("exit_code"),
                duration_s=record.get("duration_s"),
                wall_s=round(time.monotonic() - started, 3),
            )
        self._end(live, record, failure)

    def _failure(self, live: LiveRun, exc: RoscoeError) -> tuple[int, str]:
        """The status and reason that answer a run that failed before it started (logged)."""
        if isinstance(exc, UsageError):
            self.log("run_refused", run_id=live.id, reason=exc.message)
            return 400, reason_of(exc)
        self.log("run_failed", level="error", run_id=live.id, reason=exc.message)
        if isinstance(exc, EngineError):
            return 503, f"the container engine failed: {exc.message}"
        if isinstance(exc, IsolationError):  # the host's run.isolation cannot be had
            return 503, f"the run cannot be isolated as configured: {reason_of(exc)}"
        if isinstance(exc, ImageError):
            return 500, reason_of(exc)
        return 500, exc.message

    def _finish_cancelled(self, live: LiveRun, record: dict[str, Any]) -> dict[str, Any]:
        """The run core calls every stop `interrupted`; a cancel asked for is `cancelled`."""
        if live.cancel_reason == "cancelled" and record.get("status") == "interrupted":
            record = {**record, "status": "cancelled", "message": live_message(live)}
            self.backend.save_record(record)
        return record

    def _stopped_before_start(self, live: LiveRun, reason: str) -> dict[str, Any]:
        status = "cancelled" if live.cancel_reason == "cancelled" else "interrupted"
        record = self.backend.draft_record(live.request, live.id, status)
        record.update(exit_code=INTERRUPTED_EXIT, message=live.cancel_message or reason)
        self.backend.save_record(record)
        return record

    def _failed_record(self, live: LiveRun, reason: str, code: int) -> dict[str, Any] | None:
        record = self.backend.draft_record(live.request, live.id, "error")
        record.update(exit_code=code, message=reason)
        try:
            self.backend.save_record(record)
        except Exception as exc:  # the record is a courtesy; the failure is logged already
            self.log("error", level="error", error=f"{type(exc).__name__}: {exc}", run_id=live.id)
            return None
        return record

    def _end(
        self, live: LiveRun, record: dict[str, Any] | None, failure: tuple[int, str] | None
    ) -> None:
        if record is not None:
            self.metrics.finished(str(record.get("status")), record.get("duration_s"))
        live.finish(record, failure)
        with self._cond:
            self._live.pop(live.id, None)
            self._running -= 1
            self._dispatch()
            self._cond.notify_all()

    # -- cancelling ------------------------------------------------------------------------
    def cancel(self, run_id: str, why: str) -> LiveRun | None:
        """Cancel a queued or running run (`cancelled`); None when it is not live."""
        with self._cond:
            live = self._live.get(run_id)
            if live is None or live.finished:
                return None
            if live.cancel_reason is None:
                live.cancel_reason = "cancelled"
                live.cancel_message = why
            if live.status == QUEUED and live in self._line:
                self._line.remove(live)
                self._live.pop(live.id, None)
                queued = True
            else:
                queued = False
        if queued:
            self._cancel_queued(live)
        else:
            live.cancel.set()
        return live

    def _cancel_queued(self, live: LiveRun) -> None:
        record = self.backend.draft_record(live.request, live.id, "cancelled")
        record.update(exit_code=INTERRUPTED_EXIT, message=live_message(live))
        try:
            self.backend.save_record(record)
        except Exception as exc:
            self.log("error", level="error", error=f"{type(exc).__name__}: {exc}", run_id=live.id)
        self.metrics.finished("cancelled", None)
        self.log("run_cancelled", run_id=live.id, was="queued", reason=live_message(live))
        live.finish(record, None)
        with self._cond:
            self._cond.notify_all()

    def close(self) -> list[str]:
        """Refuse new runs and cancel every queued one; the ids cancelled."""
        with self._cond:
            self._closed = True
            line = list(self._line)
            self._line.clear()
            for live in line:
                self._live.pop(live.id, None)
                live.cancel_reason = "cancelled"
                live.cancel_message = "cancelled before it started: the service is shutting down"
        for live in line:
            self._cancel_queued(live)
        return [live.id for live in line]

    def interrupt_running(self) -> list[str]:
        """Stop every run in flight (recorded `interrupted`); the ids told. A run taken from
        the line is in flight even before its thread has marked it running."""
        with self._cond:
            running = [live for live in self._live.values() if live not in self._line]
        for live in running:
            if live.cancel_reason is None:
                live.cancel_reason = "interrupted"
            live.cancel.set()
        return sorted(live.id for live in running)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run holds a slot, at most `timeout` seconds; True when idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


def reason_of(exc: RoscoeError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


def live_message(live: LiveRun) -> str:
    return live.cancel_message or "cancelled"
