"""The HTTP/1.1 connection, on uvicorn's h11 protocol, with the promises roscoe makes on top.

- A whole-request deadline: a client has REQUEST_DEADLINE_S from connecting to send its
  request line and headers (enforced here: 408) and its body (the app reads the body against
  the same deadline, which this protocol puts in the request's scope).
- Malformed requests get the documented one-line JSON, not a text page: 400 for a request
  h11 cannot parse, 431 for a header block that grows past MAX_HEADER_BYTES.
- Answers sent before the body was read (401, 411, 413...) reach the client: instead of
  closing a socket with unread input (the kernel then sends a reset, and the client may lose
  the answer), the connection is half-closed and the rest of the body read and dropped, for
  at most LINGER_S seconds or LINGER_BYTES bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from roscoe.service.validate import REQUEST_DEADLINE_S

DEADLINE_KEY = "roscoe.deadline"  # scope["extensions"][DEADLINE_KEY]: loop time, seconds
LINGER_S = 2.0
LINGER_BYTES = 1 << 20


def raw_json_answer(status: int, phrase: str, reason: str) -> bytes:
    body = (json.dumps({"error": reason}) + "\n").encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _ConnectionProxy:
    """h11's connection, remembering the last parse error (uvicorn swallows it)."""

    def __init__(self, conn: h11.Connection):
        self._conn = conn
        self.error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _LingeringTransport:
    """The connection's transport, whose close() lets the client read the answer first."""

    def __init__(self, transport: asyncio.Transport, protocol: ServiceProtocol):
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_gently()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ServiceProtocol(H11Protocol):
    """uvicorn's h11 protocol plus the deadline, JSON errors and the gentle close."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.conn = _ConnectionProxy(self.conn)  # type: ignore[assignment]
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None
        self._linger_left = 0
        self._raw_transport: asyncio.Transport | None = None

    # -- the deadline ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw_transport = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._deadline = self.loop.time() + REQUEST_DEADLINE_S
        self._timer = self.loop.call_later(REQUEST_DEADLINE_S, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in (self._timer, self._lingering):
            if handle is not None:
                handle.cancel()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        had_cycle = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not had_cycle:
            # A request's head arrived: the app reads its body against the same deadline.
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[DEADLINE_KEY] = self._deadline
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        cycle: object = self.cycle  # uvicorn's stubs call it never None; it is, between requests
        if cycle is None and self._raw_transport and not self._raw_transport.is_closing():
            self._send_raw(
                408,
                "Request Timeout",
                f"the request was not received within {REQUEST_DEADLINE_S:g} seconds",
            )

    # -- malformed requests ------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        error = self.conn.error  # type: ignore[attr-defined]
        if error is not None and error.error_status_hint == 431:
            self._send_raw(
                431, "Request Header Fields Too Large", "the request's headers are too large"
            )
            return
        detail = f": {error}" if error is not None and str(error) else ""
        self._send_raw(400, "Bad Request", f"malformed HTTP request{detail}")

    def _send_raw(self, status: int, phrase: str, reason: str) -> None:
        self.logger.info("refused a request: %s %s", status, reason)
        transport = self._raw_transport
        if transport is None or transport.is_closing():
            return
        transport.write(raw_json_answer(status, phrase, reason))
        self.close_gently()

    # -- closing without losing the answer ---------------------------------------------------
    def close_gently(self) -> None:
        transport = self._raw_transport
        if transport is None or transport.is_closing():
            return
        if self._lingering is not None:
            return
        unread = self.cycle is not None and self.cycle.more_body and not self.cycle.disconnected
        if not unread and self.cycle is not None:
            transport.close()
            return
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except OSError:
            transport.close()
            return
        self._linger_left = LINGER_BYTES
        transport.resume_reading()
        self._lingering = self.loop.call_later(LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._linger_left -= len(data)
            if self._linger_left <= 0 and self._raw_transport is not None:
                self._raw_transport.close()
            return
        super().data_received(data)

    def eof_received(self) -> None:
        if self._lingering is not None and self._raw_transport is not None:
            self._raw_transport.close()
