"""What each endpoint decides, as plain methods: no sockets, no HTTP framework.

`roscoe.service.app` maps routes onto these methods and moves bytes; everything that says
yes or no (the token, limits, ids, the queue) is here or in the modules this one calls, so
it tests without a network. A refusal is an ApiError: the HTTP status, a one-line reason
and any headers the answer must carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from roscoe.access.book import TokenBook, Unauthorized
from roscoe.access.principal import ADMIN_PRINCIPAL, Principal
from roscoe.errors import UsageError
from roscoe.runs.records import check_run_id
from roscoe.service.live import QUEUED, LiveRun
from roscoe.service.log import JsonLog
from roscoe.service.readiness import Readiness
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
    """The service's decisions. `token` is the admin token (`server start` made it); the
    scoped tokens are read from `tokens_file` (access.book), again whenever it changes.

    Every method that touches cases, tools or runs takes the caller (`who`, a Principal): a
    scoped token sees only its cases' runs (any other is a 404, as if it did not exist) and
    runs only its tools on its cases (403 naming the rule)."""

    token: str
    scheduler: Scheduler
    health_info: dict[str, Any]  # version and engine, described once at start
    log: JsonLog
    max_timeout: float = MAX_TIMEOUT_S
    stream_clients: int = field(default=0)  # followers and event streams open now
    # Whether the engine answers (service.readiness); /health?engine=1 adds its answer.
    engine_probe: Callable[[], Readiness] | None = None
    tokens_file: Path | None = None
    book: TokenBook = field(init=False)

    def __post_init__(self) -> None:
        self.book = TokenBook(self.token, self.tokens_file)

    @property
    def backend(self) -> RunBackend:
        return self.scheduler.backend

    # -- checks ------------------------------------------------------------------------------
    def require_token(self, authorization: str | None) -> Principal:
        """The caller the Authorization header names; ApiError (401) when none (or when its
        token expired or was revoked)."""
        try:
            return self.book.principal(authorization)
        except Unauthorized as exc:
            raise ApiError(401, exc.reason, {"WWW-Authenticate": "Bearer"}) from None

    @staticmethod
    def require_admin(who: Principal, what: str) -> None:
        if not who.admin:
            raise ApiError(403, f"token '{who.name}' may not read {what} (the admin token may)")

    def require_visible(self, run_id: str, who: Principal) -> None:
        """404 unless the run exists and is of a case the caller sees (the same 404 either
        way: a scoped token cannot tell another case's run from no run)."""
        if who.admin:
            return
        live = self.scheduler.get(run_id)
        case: str | None = None
        if live is not None:
            case = live.request.case
        else:
            record = self.backend.get_run(run_id)
            case = str(record.get("case", "")) if record is not None else None
        if case is None or not who.sees_case(case):
            raise ApiError(404, f"no run {run_id}")

    @staticmethod
    def run_id(run_id: str) -> str:
        try:
            return check_run_id(run_id)
        except UsageError:
            raise ApiError(404, "no such run") from None

    # -- /health and /metrics ----------------------------------------------------------------
    def health(self, engine: bool = False) -> dict[str, Any]:
        # Reads counters only: never waits for a lock a run holds, never calls the engine,
        # unless asked (engine=True, /health?engine=1): then one short, cached ping there
        # (service.readiness), which blocks: call it from a thread.
        answer: dict[str, Any] = {
            "status": "stopping" if self.scheduler.closed else "ok",
            **self.health_info,
            "runs_in_flight": self.scheduler.running,
            "runs_queued": self.scheduler.waiting,
        }
        if engine and self.engine_probe is not None:
            answer.update(self.engine_probe().to_json())
        return answer

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

    def submit(self, request: RunRequest, who: Principal = ADMIN_PRINCIPAL) -> LiveRun:
        """Check the caller's scope, the case and the script, then queue the run (recorded as
        requested by the caller). Blocking: call from a thread."""
        refusal = who.run_refusal(request.case, request.script)
        if refusal is not None:
            self.log("run_refused", caller=who.name, case=request.case, script=request.script)
            raise ApiError(403, refusal)
        request = replace(request, requested_by=who.name)
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

    def list_runs(
        self, raw_limit: str | None, who: Principal = ADMIN_PRINCIPAL, case: str | None = None
    ) -> dict[str, Any]:
        """The newest runs the caller may see (of `case` only, when given)."""
        try:
            limit = int(raw_limit or DEFAULT_LIST_LIMIT)
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")

        def shown(name: str) -> bool:
            return who.sees_case(name) and (case is None or name == case)

        everything = who.admin and case is None
        return {"runs": self.backend.list_runs(limit, None if everything else shown)}

    def get_run(self, run_id: str, who: Principal = ADMIN_PRINCIPAL) -> dict[str, Any]:
        run_id = self.run_id(run_id)
        live = self.scheduler.get(run_id)
        record = self.current_record(live) if live is not None else self.backend.get_run(run_id)
        if record is None or not who.sees_case(str(record.get("case", ""))):
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

    def saved_output(
        self, run_id: str, tail: int, who: Principal = ADMIN_PRINCIPAL
    ) -> tuple[bytes, bool]:
        self.require_visible(run_id, who)
        found = self.backend.read_output(run_id, tail)
        if found is None:
            raise ApiError(404, f"no run {run_id}")
        return found

    def cancel(
        self,
        run_id: str,
        who: Principal = ADMIN_PRINCIPAL,
        why: str = "cancelled on request (DELETE /runs/{id})",
    ) -> LiveRun:
        """Cancel a queued or running run (its record's message says `why`); 409 when it is
        over, 404 when there is none (or it is not the caller's to see)."""
        run_id = self.run_id(run_id)
        self.require_visible(run_id, who)
        live = self.scheduler.cancel(run_id, why)
        if live is not None:
            self.log("run_cancel_requested", run_id=run_id, caller=who.name)
            return live
        record = self.backend.get_run(run_id)
        if record is None:
            raise ApiError(404, f"no run {run_id}")
        if record.get("status") not in (QUEUED, "running"):
            raise ApiError(409, f"run {run_id} is over already ({record.get('status')})")
        # Under way, but not in this service: the CLI's, or another runner's.
        raise ApiError(
            409,
            f"run {run_id} was not started here, so it cannot be stopped from here "
            f"(`roscoe runs show {run_id}` says where it runs)",
        )

    def cancel_on_disconnect(self, live: LiveRun) -> None:
        if self.scheduler.cancel(live.id, "cancelled: the client went away before the run ended"):
            self.log("run_cancelled", run_id=live.id, reason="client_disconnected")

    # -- previews ----------------------------------------------------------------------------
    def apply_preview(self, run_id: str, who: Principal = ADMIN_PRINCIPAL) -> dict[str, Any]:
        """Land a preview's changes: the admin token, or a scoped one made with --can-apply,
        for a run of a case it sees. 409 for a run that is not a pending preview, or when the
        case changed where the preview would write (nothing applied). Blocking."""
        self.get_run(run_id, who)  # 404 unless it exists and the caller sees its case
        refusal = who.apply_refusal()
        if refusal is not None:
            raise ApiError(403, refusal)
        record = self._preview_call(self.backend.apply_preview, run_id, who)
        self.log("preview_applied", run_id=run_id, caller=who.name)
        return record

    def discard_preview(self, run_id: str, who: Principal = ADMIN_PRINCIPAL) -> dict[str, Any]:
        """Drop a preview's changes (any token that sees the run's case). Blocking."""
        self.get_run(run_id, who)  # 404 unless it exists and the caller sees its case
        record = self._preview_call(self.backend.discard_preview, run_id, who)
        self.log("preview_discarded", run_id=run_id, caller=who.name)
        return record

    def _preview_call(self, call: Any, run_id: str, who: Principal) -> dict[str, Any]:
        from roscoe.errors import EngineError, RoscoeError
        from roscoe.runs.landing import Conflict

        try:
            return dict(call(run_id, who.name))
        except (Conflict, UsageError) as exc:
            self.log("preview_refused", run_id=run_id, caller=who.name, reason=exc.message)
            raise ApiError(409, exc.message) from None
        except EngineError as exc:
            raise ApiError(503, f"the container engine failed: {exc.message}") from None
        except RoscoeError as exc:
            self.log("preview_failed", level="error", run_id=run_id, reason=exc.message)
            raise ApiError(500, exc.message) from None

    # -- discovery ---------------------------------------------------------------------------
    def list_cases(self, who: Principal = ADMIN_PRINCIPAL) -> dict[str, Any]:
        cases = self.backend.list_cases()
        return {"cases": [c for c in cases if who.sees_case(str(c.get("name", "")))]}

    def list_tools(self, who: Principal = ADMIN_PRINCIPAL) -> dict[str, Any]:
        tools = self.backend.list_tools()
        return {"tools": [t for t in tools if who.uses_tool(str(t.get("name", "")))]}

    # -- shutdown ----------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Refuse new runs and cancel the queued ones."""
        return self.scheduler.close()

    def interrupt_running(self) -> list[str]:
        return self.scheduler.interrupt_running()


__all__ = ["INTERRUPTED_EXIT", "ApiError", "ExecutionService"]
