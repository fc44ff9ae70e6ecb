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
        url = self._url(path, params, versioned)
        conn.request(method, url, body=payload, headers=headers)
        response = conn.getresponse()
        log.debug("engine call: %s %s -> %s", method, url, response.status)
        return conn, response

    def ping(self) -> dict[str, str]:
        """The headers of GET /_ping: the engine's API version, name and version, cheaply.

        (Podman answers /version in ~0.7 s; /_ping in ~1 ms.)
        """
        conn, response = self._send("GET", "/_ping", versioned=False)
        try:
            response.read()
        finally:
            conn.close()
        if response.status >= 400:
            raise WireError(response.status, "the engine refused /_ping")
        return {k.lower(): v for k, v in response.getheaders()}

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

    def hijack(self, path: str, *, params: Mapping[str, Any] | None = None) -> Raw:
        """POST an attach-style request and take over the connection for its raw stream."""
        conn = _UnixConnection(self.socket_path, None)  # output may be silent for long
        url = self._url(path, params, True)
        conn.request(
            "POST", url, headers={"Host": "localhost", "Connection": "Upgrade", "Upgrade": "tcp"}
        )
        response = conn.getresponse()
        log.debug("engine call: POST %s -> %s", url, response.status)
        if response.status >= 400:
            reason = _reason(response.read())
            conn.close()
            raise WireError(response.status, reason)

        # 101 Switching Protocols: http.client reads no body for it, so the stream is read
        # from the buffered socket file under the response (which may already hold bytes).
        def close() -> None:
            response.close()
            conn.close()

        return Raw(response.fp.read1, close)


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
