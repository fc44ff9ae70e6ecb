"""Is the execution service answering? A GET /health on 127.0.0.1:PORT, standard library only.

Readiness is probed here, never through the engine's HEALTHCHECK: Podman runs none without
systemd, so a container with one stays "starting" forever there.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
ENGINE_PROBE_TIMEOUT_S = 3.0  # the service's own ping gives up after 1 s


@dataclass(frozen=True)
class Health:
    answering: bool
    status: int | None = None  # HTTP status of /health
    latency_ms: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def engine_reachable(self) -> bool | None:
        """Whether the service reaches its engine (asked with engine=True); None: not said
        (not asked, or an older service that does not know the question)."""
        value = self.payload.get("engine_reachable")
        return value if isinstance(value, bool) else None

    @property
    def engine_error(self) -> str | None:
        value = self.payload.get("engine_error")
        return str(value) if value else None

    def to_json(self) -> dict[str, Any]:
        return {
            "answering": self.answering,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "engine_reachable": self.engine_reachable,
            "engine_error": self.engine_error,
        }


def endpoint(port: int) -> str:
    return f"http://{HOST}:{port}"


def probe(port: int, timeout: float = 1.0, *, engine: bool = False) -> Health:
    """One GET /health; never raises. engine=True also asks whether the service reaches its
    engine (/health?engine=1: one short ping there, so the wait is a little longer)."""
    import http.client

    began = time.perf_counter()
    if engine:
        timeout = max(timeout, ENGINE_PROBE_TIMEOUT_S)
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        path = "/health?engine=1" if engine else "/health"
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read(64 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        return Health(False, error=_reason(exc))
    finally:
        conn.close()
    latency = round((time.perf_counter() - began) * 1000, 1)
    payload: dict[str, Any] = {}
    try:
        decoded = json.loads(body or b"{}")
        if isinstance(decoded, dict):
            payload = decoded
    except ValueError:
        pass
    return Health(response.status == 200, response.status, latency, payload)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def port_in_use(port: int) -> bool:
    """True when something on this host already holds the port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR: a connection in TIME_WAIT from an earlier runner is not "in use".
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    finally:
        sock.close()
    return False
