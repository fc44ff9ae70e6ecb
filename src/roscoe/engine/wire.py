"""A small HTTP client for the engine API over a unix socket, on the standard library only.

Why it exists: importing the docker SDK costs ~150 ms (requests, urllib3), which alone is
twice what `roscoe run` may add on top of the engine. The calls a one-shot run and the
first contact need (version, create, start, logs, wait, inspect, kill, remove) are plain
HTTP/1.1 with JSON bodies, so the Engine makes them here and creates the SDK client only
when a rarer call (pull, build, the runner container) needs it. Both speak to the same
endpoint with the same negotiated API version.

Only unix sockets: tcp:// (with TLS) and ssh:// endpoints stay with the SDK. The HTTP is
spoken here too, not by http.client: importing that pulls in ssl and the email package
(~15 ms, a tenth of what `roscoe run` may add), for requests that are a few lines each way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

log = logging.getLogger("roscoe.engine")


class WireError(Exception):
    """The engine answered with an error status (message is the engine's own reason)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


_MAX_LINE = 65536  # longer status or header lines are not an engine speaking
_MAX_HEADERS = 100


class _Response:
    """An answer's status and headers (names in lower case), its body still on `reader`."""

    def __init__(self, sock: socket.socket, reader: Any, status: int, headers: dict[str, str]):
        self.sock = sock
        self.reader = reader
        self.status = status
        self.headers = headers

    def read(self) -> bytes:
        """The whole body: by its Content-Length, de-chunked, or up to the end."""
        if self.status < 200 or self.status in (204, 304):
            return b""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return _read_chunked(self.reader)
        length = self.headers.get("content-length")
        if length is not None:
            want = int(length)
            data = self.reader.read(want)
            if len(data) < want:
                raise ConnectionError("the engine closed the connection mid-answer")
            return bytes(data)
        return bytes(self.reader.read())  # Connection: close, so the end of the body

    def close(self) -> None:
        # The reader holds its own reference to the socket: both go.
        self.reader.close()
        self.sock.close()


def _line(reader: Any) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ConnectionError("the engine's answer has an overlong line")
    return bytes(line)


def _read_head(reader: Any) -> tuple[int, dict[str, str]]:
    status_line = _line(reader)
    if not status_line:
        raise ConnectionError("the engine closed the connection without answering")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n", b""):
            return int(parts[1]), headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ConnectionError("the engine's answer has too many headers")


def _read_chunked(reader: Any) -> bytes:
    body: list[bytes] = []
    while True:
        size_line = _line(reader).split(b";", 1)[0].strip()
        if not size_line:
            raise ConnectionError("the engine closed the connection mid-answer")
        size = int(size_line, 16)
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):  # trailers: not needed
                pass
            return b"".join(body)
        data = reader.read(size + 2)  # the chunk and its CRLF
        if len(data) < size + 2:
            raise ConnectionError("the engine closed the connection mid-answer")
        body.append(data[:size])


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
        upgrade: bool = False,
    ) -> _Response:
        """One request on a connection of its own; the answer with its head read."""
        # forever: no read timeout at all (a wait on a long run, a silent output stream).
        url = self._url(path, params, versioned)
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {url} HTTP/1.1", "Host: localhost"]
        if upgrade:  # an attach: the connection becomes the output stream
            head += ["Connection: Upgrade", "Upgrade: tcp"]
        else:  # the body of an answer then ends where the connection does, whatever it says
            head.append("Connection: close")
        if body is not None:
            head.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(payload)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(None if forever else (timeout or self.timeout))
            sock.connect(self.socket_path)
            sock.sendall(request)
            reader = sock.makefile("rb")
            try:
                status, headers = _read_head(reader)
            except BaseException:
                reader.close()
                raise
        except BaseException:
            sock.close()
            raise
        log.debug("engine call: %s %s -> %s", method, url, status)
        return _Response(sock, reader, status, headers)

    def ping(self) -> dict[str, str]:
        """The headers of GET /_ping: the engine's API version, name and version, cheaply.

        (Podman answers /version in ~0.7 s; /_ping in ~1 ms.)
        """
        response = self._send("GET", "/_ping", versioned=False)
        try:
            response.read()
        finally:
            response.close()
        if response.status >= 400:
            raise WireError(response.status, "the engine refused /_ping")
        return response.headers

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
        response = self._send(
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
            response.close()
        if response.status >= 400:
            raise WireError(response.status, _reason(data))
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def hijack(self, path: str, *, params: Mapping[str, Any] | None = None) -> Raw:
        """POST an attach-style request and take over the connection for its raw stream."""
        # No read timeout: the output may be silent for long.
        response = self._send("POST", path, params=params, forever=True, upgrade=True)
        if response.status >= 400:
            try:
                reason = _reason(response.read())
            finally:
                response.close()
            raise WireError(response.status, reason)

        # 101 Switching Protocols (or a 200 from an engine that does not say so): the stream
        # follows the head on the same buffered reader, which may already hold some of it.
        def close() -> None:
            # Wake a reader still blocked on the stream first: closing the buffered reader
            # waits for its lock, which that read holds.
            with contextlib.suppress(OSError):
                response.sock.shutdown(socket.SHUT_RDWR)
            response.close()

        return Raw(response.reader.read1, close)


class Raw:
    """A taken-over connection: read1() its bytes, close() it."""

    def __init__(self, read1: Any, close: Any):
        self.read1 = read1
        self._close = close

    def close(self) -> None:
        try:
            self._close()
        except OSError as exc:  # closing a dead stream must never hide a run's outcome
            log.debug("closing a raw stream: %s", exc)


class SdkWire:
    """The same calls as Wire, made through the docker SDK, for tcp:// (TLS) and ssh:// hosts."""

    def __init__(self, api: Any):
        self.api = api

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
        url = self.api._url(path) if versioned else f"{self.api.base_url}{path}"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        response = self.api.request(
            method,
            url,
            params=clean,
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json"} if body is not None else None,
            timeout=None if forever else (timeout or self.api.timeout),
        )
        if response.status_code >= 400:
            raise WireError(response.status_code, _reason(response.content))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def hijack(self, path: str, *, params: Mapping[str, Any] | None = None) -> Raw:
        response = self.api.post(
            self.api._url(path),
            params={k: _param(v) for k, v in (params or {}).items()},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            stream=True,
            timeout=None,
        )
        if response.status_code >= 400:
            raise WireError(response.status_code, _reason(response.content))
        reader = response.raw._fp.fp  # the buffered socket file under the HTTP response
        return Raw(reader.read1, response.close)


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
