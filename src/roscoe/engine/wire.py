"""A small HTTP client for the engine API over a unix socket, on the standard library only.

Why it exists: importing the docker SDK costs ~150 ms (requests, urllib3), which alone is
twice what `roscoe run` may add on top of the engine. The calls a one-shot run and the
first contact need (version, create, start, logs, wait, inspect, kill, remove) are plain
HTTP/1.1 with JSON bodies, so the Engine makes them here and creates the SDK client only
when a rarer call (pull, build, the runner container) needs it. Both speak to the same
endpoint with the same negotiated API version.

Only unix sockets: tcp:// (with TLS) and ssh:// endpoints stay with the SDK.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode


class WireError(Exception):
    """The engine answered with an error status (message is the engine's own reason)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Wire:
    """Requests against one engine socket; each call opens its own connection (~50 µs)."""

    def __init__(self, socket_path: str, api_version: str | None = None, timeout: float = 60):
        self.socket_path = socket_path
        self.api_version = api_version
        self.timeout = timeout

    def _url(self, path: str, params: Mapping[str, Any] | None, versioned: bool) -> str:
        prefix = f"/v{self.api_version}" if versioned and self.api_version else ""
        query = ""
        if params:
            clean = {k: _param(v) for k, v in params.items() if v is not None}
            query = "?" + urlencode(clean)
        return f"{prefix}{path}{query}"

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
        forever: bool = False,
        versioned: bool = True,
    ) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        # forever: no read timeout at all (a wait on a long run, a silent output stream).
        conn = _UnixConnection(self.socket_path, None if forever else (timeout or self.timeout))
        headers = {"Host": "localhost"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, self._url(path, params, versioned), body=payload, headers=headers)
        return conn, conn.getresponse()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
        forever: bool = False,
        versioned: bool = True,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty). Errors raise WireError."""
        conn, response = self._send(
            method,
            path,
            params=params,
            body=body,
            timeout=timeout,
            forever=forever,
            versioned=versioned,
        )
        try:
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            raise WireError(response.status, _reason(data))
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def frames(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """A multiplexed stdout/stderr stream (logs, attach): (1 or 2, bytes) per frame."""
        conn, response = self._send("GET", path, params=params, forever=True)
        try:
            if response.status >= 400:
                raise WireError(response.status, _reason(response.read()))
            yield from demultiplex(response)
        finally:
            conn.close()


def demultiplex(stream: Any) -> Iterator[tuple[int, bytes]]:
    """Split the engine's 8-byte-header frames: [type, 0, 0, 0, size (big-endian u32)]."""
    while True:
        header = _read_exactly(stream, 8)
        if len(header) < 8:
            return
        kind, size = struct.unpack(">BxxxL", header)
        payload = _read_exactly(stream, size)
        if payload:
            yield (2 if kind == 2 else 1), payload
        if len(payload) < size:
            return


def _read_exactly(stream: Any, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _reason(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", "")).strip() or data.decode(errors="replace")
    except (ValueError, AttributeError):
        return data.decode("utf-8", "replace").strip()


def quoted(ref: str) -> str:
    """A container or image reference as a URL path segment."""
    return quote(ref, safe="")
