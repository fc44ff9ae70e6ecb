"""The service's endpoints as plain functions of a request: routing, auth, limits, errors.

No sockets here: `ExecutionService.handle()` takes the method, path, headers and a way to
read the body, and returns a Response. The HTTP layer (`roscoe.service.httpd`) only moves
bytes. Runs themselves go through a RunBackend (the run core in production, a fake in
unit tests).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from roscoe.errors import EngineError, IsolationError, RoscoeError, UsageError
from roscoe.runs.records import check_run_id
from roscoe.service.auth import authorized
from roscoe.service.limiter import QueueFull, RunLimiter, ShuttingDown
from roscoe.service.log import JsonLog
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
TRUNCATED_HEADER = "X-Roscoe-Output-Truncated"


class RunBackend(Protocol):
    """What the service needs from the run core."""

    def new_run_id(self) -> str: ...

    def check(self, request: RunRequest) -> None:
        """Raise UsageError when the case or script cannot be run (before any container)."""

    def run(self, request: RunRequest, run_id: str, cancel: threading.Event) -> dict[str, Any]:
        """Carry out the run; the record as JSON plus `output` (tail) and `output_truncated`."""

    def list_runs(self, limit: int) -> list[dict[str, Any]]: ...

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...

    def read_output(self, run_id: str, tail_bytes: int) -> tuple[bytes, bool] | None:
        """At most the last tail_bytes of the output, and whether it was cut; None: no run."""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    log_fields: dict[str, Any] = field(default_factory=dict)  # extra fields for the request log

    @classmethod
    def json(cls, status: int, data: Any, **headers: str) -> Response:
        body = (json.dumps(data, default=str) + "\n").encode("utf-8")
        return cls(status, body, headers=dict(headers))

    @classmethod
    def error(cls, status: int, reason: str, **headers: str) -> Response:
        # One line, always: clients show it as is.
        return cls.json(status, {"error": " ".join(reason.split())}, **headers)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by name, whatever its case."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _usage_reason(exc: RoscoeError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


@dataclass
class ExecutionService:
    token: str
    limiter: RunLimiter
    backend: RunBackend
    health_info: dict[str, Any]  # version and engine, described once at start
    log: JsonLog
    max_timeout: float = MAX_TIMEOUT_S
    _active: dict[str, threading.Event] = field(default_factory=dict)
    _active_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the one entry point ---------------------------------------------------------------
    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        read_body: Callable[[int], bytes],
    ) -> Response:
        """Answer one request, and log it (method, path, status, duration)."""
        started = time.monotonic()
        url = urlsplit(target)
        try:
            response = self._route(method, url.path, parse_qs(url.query), headers, read_body)
        except Exception as exc:  # a bug must cost one request, not the service
            self.log("error", level="error", error=f"{type(exc).__name__}: {exc}", path=url.path)
            response = Response.error(500, "internal error; see the service log (roscoe logs)")
        self.log(
            "request",
            # Probes poll /health all the time: keep them out of the way of real requests.
            level="debug" if url.path == "/health" and response.status == 200 else "info",
            method=method,
            path=target,
            status=response.status,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            **response.log_fields,
        )
        return response

    def _route(  # noqa: PLR0911 - one early return per route reads as the routing table
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        read_body: Callable[[int], bytes],
    ) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts == ["health"]:
            return self._allow(method, "GET") or self.health()
        if not parts or parts[0] != "runs" or len(parts) > 3:
            return Response.error(404, f"no such endpoint: {path}")
        if len(parts) == 3 and parts[2] != "output":
            return Response.error(404, f"no such endpoint: {path}")
        allowed = ("GET", "POST") if len(parts) == 1 else ("GET",)
        refused = self._allow(method, *allowed)
        if refused:
            return refused
        if not authorized(header(headers, "Authorization"), self.token):
            return Response.error(
                401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"}
            )
        if len(parts) == 1:
            if method == "POST":
                return self.post_run(headers, read_body)
            return self.list_runs(query)
        run_id = parts[1]
        try:
            check_run_id(run_id)
        except UsageError:
            return Response.error(404, "no such run")
        return self.run_output(run_id, query) if len(parts) == 3 else self.get_run(run_id)

    @staticmethod
    def _allow(method: str, *allowed: str) -> Response | None:
        if method in allowed:
            return None
        return Response.error(
            405,
            f"{method} is not allowed here (allowed: {', '.join(allowed)})",
            Allow=", ".join(allowed),
        )

    # -- endpoints -------------------------------------------------------------------------
    def health(self) -> Response:
        # Reads counters only: never waits for a lock a run holds, never calls the engine.
        return Response.json(
            200,
            {
                "status": "stopping" if self.limiter.closed else "ok",
                **self.health_info,
                "runs_in_flight": self.limiter.running,
                "runs_queued": self.limiter.waiting,
            },
        )

    def post_run(self, headers: Mapping[str, str], read_body: Callable[[int], bytes]) -> Response:
        try:
            length = check_body_size(header(headers, "Content-Length"))
            request = parse_run_request(read_body(length), self.max_timeout)
        except Rejected as exc:
            return Response.error(exc.status, exc.reason)
        try:
            self.backend.check(request)
        except UsageError as exc:
            return Response.error(400, _usage_reason(exc))
        try:
            with self.limiter.slot():
                return self._carry_out(request)
        except QueueFull:
            return Response.error(
                429,
                f"{self.limiter.running} runs in flight and {self.limiter.waiting} waiting; "
                "try again later",
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        except ShuttingDown:
            return Response.error(
                503, "the service is shutting down", **{"Retry-After": str(RETRY_AFTER_S)}
            )

    def _carry_out(self, request: RunRequest) -> Response:
        run_id = self.backend.new_run_id()
        cancel = threading.Event()
        with self._active_lock:
            self._active[run_id] = cancel
        self.log(
            "run_started",
            run_id=run_id,
            case=request.case,
            script=request.script,
            args=list(request.args),
            env=sorted(request.env),  # names only: values never reach the log
            timeout=request.timeout,
        )
        started = time.monotonic()
        try:
            record = self.backend.run(request, run_id, cancel)
        except UsageError as exc:
            self.log("run_refused", run_id=run_id, reason=exc.message)
            return Response.error(400, _usage_reason(exc))
        except EngineError as exc:
            self.log("run_failed", level="error", run_id=run_id, reason=exc.message)
            return Response.error(503, f"the container engine failed: {exc.message}")
        except IsolationError as exc:
            self.log("run_refused", level="error", run_id=run_id, reason=exc.message)
            return Response.error(503, f"the run cannot be isolated as configured: {exc.message}")
        except RoscoeError as exc:
            self.log("run_failed", level="error", run_id=run_id, reason=exc.message)
            return Response.error(500, exc.message)
        finally:
            with self._active_lock:
                self._active.pop(run_id, None)
        self.log(
            "run_finished",
            run_id=record.get("id", run_id),
            status=record.get("status"),
            exit_code=record.get("exit_code"),
            duration_s=record.get("duration_s"),
            wall_s=round(time.monotonic() - started, 3),
        )
        response = Response.json(200, record)
        response.log_fields["run_id"] = record.get("id", run_id)
        return response

    def list_runs(self, query: dict[str, list[str]]) -> Response:
        raw = (query.get("limit") or [str(DEFAULT_LIST_LIMIT)])[-1]
        try:
            limit = int(raw)
        except ValueError:
            return Response.error(400, "limit must be a whole number")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            return Response.error(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        return Response.json(200, {"runs": self.backend.list_runs(limit)})

    def get_run(self, run_id: str) -> Response:
        record = self.backend.get_run(run_id)
        if record is None:
            return Response.error(404, f"no run {run_id}")
        return Response.json(200, record)

    def run_output(self, run_id: str, query: dict[str, list[str]] | None = None) -> Response:
        raw = ((query or {}).get("tail") or [str(DEFAULT_OUTPUT_TAIL)])[-1]
        try:
            tail = int(raw)
        except ValueError:
            return Response.error(400, "tail must be a whole number of bytes")
        if not 1 <= tail <= MAX_OUTPUT_TAIL:
            return Response.error(400, f"tail must be between 1 and {MAX_OUTPUT_TAIL} bytes")
        found = self.backend.read_output(run_id, tail)
        if found is None:
            return Response.error(404, f"no run {run_id}")
        output, truncated = found
        headers = {TRUNCATED_HEADER: "true" if truncated else "false"}
        try:
            output.decode("utf-8")
            content_type = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            content_type = "application/octet-stream"
        return Response(200, output, content_type=content_type, headers=headers)

    # -- shutdown --------------------------------------------------------------------------
    def cancel_all(self) -> list[str]:
        """Ask every run in flight to stop (their containers are stopped and removed)."""
        with self._active_lock:
            active = dict(self._active)
        for cancel in active.values():
            cancel.set()
        return sorted(active)
