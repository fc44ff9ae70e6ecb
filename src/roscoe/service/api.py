"""What each endpoint decides, as plain methods: no sockets, no HTTP framework.

`roscoe.service.app` maps routes onto these methods and moves bytes; everything that says
yes or no (the token, limits, ids, the queue) is here or in the modules this one calls, so
it tests without a network. A refusal is an ApiError: the HTTP status, a one-line reason
and any headers the answer must carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roscoe.errors import UsageError
from roscoe.runs.records import check_run_id
from roscoe.service.auth import authorized
from roscoe.service.live import QUEUED, LiveRun
from roscoe.service.log import JsonLog
from roscoe.service.scheduler import (
    INTERRUPTED_EXIT,
    QueueFull,
    RunBackend,
    Scheduler,
    ShuttingDown,
    reason_of,
)
from roscoe.service.validate import (
    MAX_TIMEOUT_S,
    Rejected,
    RunRequest,
    check_body_size,
    parse_run_request,
)

RETRY_AFTER_S = 5
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000
# GET /runs/{id}/output serves the end of the output: this much by default, ?tail=N bytes up
# to the maximum. The whole file stays in the runs dir on the host.
DEFAULT_OUTPUT_TAIL = 1024 * 1024
MAX_OUTPUT_TAIL = 16 * 1024 * 1024
# What POST /runs puts in its answer: the end of the output.
ANSWER_OUTPUT_TAIL = 64 * 1024
TRUNCATED_HEADER = "X-Roscoe-Output-Truncated"


class ApiError(Exception):
    """A refusal: the status, a one-line reason, and headers the answer must carry."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = " ".join(reason.split())  # one line, always: clients show it as is
        self.headers = headers or {}


def busy_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}


@dataclass
class ExecutionService:
    token: str
    scheduler: Scheduler
    health_info: dict[str, Any]  # version and engine, described once at start
    log: JsonLog
    max_timeout: float = MAX_TIMEOUT_S
    stream_clients: int = field(default=0)  # followers and event streams open now

    @property
    def backend(self) -> RunBackend:
        return self.scheduler.backend

    # -- checks ------------------------------------------------------------------------------
    def require_token(self, authorization: str | None) -> None:
        if not authorized(authorization, self.token):
            raise ApiError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    @staticmethod
    def run_id(run_id: str) -> str:
        try:
            return check_run_id(run_id)
        except UsageError:
            raise ApiError(404, "no such run") from None

    # -- /health and /metrics ----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        # Reads counters only: never waits for a lock a run holds, never calls the engine.
        return {
            "status": "stopping" if self.scheduler.closed else "ok",
            **self.health_info,
            "runs_in_flight": self.scheduler.running,
            "runs_queued": self.scheduler.waiting,
        }

    def metrics(self) -> str:
        engine = self.health_info.get("engine") or {}
        return self.scheduler.metrics.render(
            in_flight=self.scheduler.running,
            queued=self.scheduler.waiting,
            stream_clients=self.stream_clients,
            build={
                "version": str(self.health_info.get("version", "")),
                "engine": str(engine.get("kind", "")),
                "engine_version": str(engine.get("version", "")),
            },
        )

    # -- runs --------------------------------------------------------------------------------
    def parse_run(self, content_length: str | None, body: bytes | None) -> RunRequest | int:
        """The body's length to read (when `body` is None), else the checked request."""
        try:
            if body is None:
                return check_body_size(content_length)
            return parse_run_request(body, self.max_timeout)
        except Rejected as exc:
            raise ApiError(exc.status, exc.reason) from None

    def submit(self, request: RunRequest) -> LiveRun:
        """Check the case and script, then queue the run. Blocking: call from a thread."""
        try:
            self.backend.check(request)
        except UsageError as exc:
            raise ApiError(400, reason_of(exc)) from None
        try:
            return self.scheduler.submit(request)
        except QueueFull:
            raise ApiError(
                429,
                f"{self.scheduler.running} runs in flight and {self.scheduler.waiting} waiting; "
                "try again later",
                busy_headers(),
            ) from None
        except ShuttingDown:
            raise ApiError(503, "the service is shutting down", busy_headers()) from None

    def current_record(self, live: LiveRun) -> dict[str, Any]:
        """A live run's record now: the final one once over, else a draft (queued/running)."""
        if live.record is not None:
            return live.record
        return self.backend.draft_record(live.request, live.id, live.status)

    def answer_of(self, live: LiveRun) -> dict[str, Any]:
        """What a waiting POST /runs answers for a run that is over (blocking: a thread)."""
        if live.record is None:
            status, reason = live.failure or (500, "the run ended without a record")
            raise ApiError(status, reason)
        answer = dict(live.record)
        found = self.backend.read_output(live.id, ANSWER_OUTPUT_TAIL)
        output, truncated = found or (b"", False)
        answer["output"] = output.decode("utf-8", errors="replace")
        answer["output_truncated"] = truncated
        return answer

    def list_runs(self, raw_limit: str | None) -> dict[str, Any]:
        try:
            limit = int(raw_limit or DEFAULT_LIST_LIMIT)
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        return {"runs": self.backend.list_runs(limit)}

    def get_run(self, run_id: str) -> dict[str, Any]:
        run_id = self.run_id(run_id)
        live = self.scheduler.get(run_id)
        if live is not None:
            return self.current_record(live)
        record = self.backend.get_run(run_id)
        if record is None:
            raise ApiError(404, f"no run {run_id}")
        return record

    def output_tail(self, raw_tail: str | None) -> int:
        try:
            tail = int(raw_tail or DEFAULT_OUTPUT_TAIL)
        except ValueError:
            raise ApiError(400, "tail must be a whole number of bytes") from None
        if not 1 <= tail <= MAX_OUTPUT_TAIL:
            raise ApiError(400, f"tail must be between 1 and {MAX_OUTPUT_TAIL} bytes")
        return tail

    def saved_output(self, run_id: str, tail: int) -> tuple[bytes, bool]:
        found = self.backend.read_output(run_id, tail)
        if found is None:
            raise ApiError(404, f"no run {run_id}")
        return found

    def cancel(self, run_id: str) -> LiveRun:
        """Cancel a queued or running run; 409 when it is over, 404 when there is none."""
        run_id = self.run_id(run_id)
        live = self.scheduler.cancel(run_id, "cancelled on request (DELETE /runs/{id})")
        if live is not None:
            self.log("run_cancel_requested", run_id=run_id)
            return live
        record = self.backend.get_run(run_id)
        if record is None:
            raise ApiError(404, f"no run {run_id}")
        if record.get("status") not in (QUEUED, "running"):
            raise ApiError(409, f"run {run_id} is over already ({record.get('status')})")
        # Under way, but not in this service: the CLI's, or another runner's.
        raise ApiError(409, f"run {run_id} is not one of this service's runs")

    def cancel_on_disconnect(self, live: LiveRun) -> None:
        if self.scheduler.cancel(live.id, "cancelled: the client went away before the run ended"):
            self.log("run_cancelled", run_id=live.id, reason="client_disconnected")

    # -- discovery ---------------------------------------------------------------------------
    def list_cases(self) -> dict[str, Any]:
        return {"cases": self.backend.list_cases()}

    def list_tools(self) -> dict[str, Any]:
        return {"tools": self.backend.list_tools()}

    # -- shutdown ----------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Refuse new runs and cancel the queued ones."""
        return self.scheduler.close()

    def interrupt_running(self) -> list[str]:
        return self.scheduler.interrupt_running()


__all__ = ["INTERRUPTED_EXIT", "ApiError", "ExecutionService"]
