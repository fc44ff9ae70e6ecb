"""What every request to the service goes through: the header limits, the answer headers,
one log line, a JSON 500 for anything unexpected; the token guard for mounted apps; and the
JSON answers themselves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roscoe.service.api import ApiError, ExecutionService
from roscoe.service.validate import MAX_HEADER_BYTES, MAX_HEADERS

_ANSWER_HEADERS = [(b"cache-control", b"no-store"), (b"connection", b"close")]


def json_answer(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, default=str) + "\n"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_answer(status: int, reason: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_answer(status, {"error": " ".join(reason.split())}, headers)


class RequestFrame:
    """Pure ASGI middleware: header limits (431), the answer headers every response carries,
    one log line per request, and a 500 in JSON for anything unexpected."""

    def __init__(self, app: ASGIApp, log: Callable[..., None]):
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = {"code": 0}
        headers = scope.get("headers") or []
        if (
            len(headers) > MAX_HEADERS
            or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES
        ):
            await error_answer(431, "the request's headers are too large")(scope, receive, send)
            self._log(scope, 431, started)
            return

        async def framed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() != b"connection"),
                    *_ANSWER_HEADERS,
                ]
            await send(message)

        try:
            await self.app(scope, receive, framed_send)
        except Exception as exc:  # a bug must cost one request, not the service
            self.log(
                "error", level="error", error=f"{type(exc).__name__}: {exc}", path=scope["path"]
            )
            if not status["code"]:
                status["code"] = 500
                answer = error_answer(500, "internal error; see the service log (roscoe logs)")
                await answer(scope, receive, framed_send)
        self._log(scope, status["code"], started)

    def _log(self, scope: Scope, status: int, started: float) -> None:
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        state = scope.get("state") or {}
        fields: dict[str, Any] = {}
        if state.get("caller"):
            fields["caller"] = state["caller"]  # the token's name, never the token
        if state.get("run_id"):
            fields["run_id"] = state["run_id"]
        if state.get("client_gone"):
            fields["client_gone"] = True
        self.log(
            "request",
            # Probes poll /health all the time: keep them out of the way of real requests.
            level="debug" if path == "/health" and status == 200 else "info",
            method=scope.get("method"),
            path=f"{path}?{query}" if query else path,
            status=status,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            **fields,
        )


PRINCIPAL_KEY = "roscoe.principal"  # where the guard leaves the caller in the ASGI scope


class TokenGuard:
    """Wraps a mounted ASGI app (e.g. /mcp) so it answers only to a token the service knows
    (401 otherwise, with the REST API's JSON body); the caller that token names is left in
    the scope under PRINCIPAL_KEY, so scoped tokens reach the app as they reach REST."""

    def __init__(self, app: ASGIApp, service: ExecutionService):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            authorization = None
            for name, value in scope.get("headers") or []:
                if name.lower() == b"authorization":
                    authorization = value.decode("latin-1")
            try:
                scope[PRINCIPAL_KEY] = self.service.require_token(authorization)
            except ApiError as exc:
                await error_answer(exc.status, exc.reason, exc.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)
