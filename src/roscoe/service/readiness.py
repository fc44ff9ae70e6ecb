"""Does the engine answer the service? One GET /_ping through its socket, short and cached.

/health stays cheap and never touches the engine. `GET /health?engine=1` adds this answer, so
`roscoe server status` can show, and `roscoe server start` can replace, a runner whose service
answers but cannot reach its engine (one still holding a socket the engine has replaced, for
one). Transport-free: the HTTP layer only asks `EngineProbe.check()`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PING_TIMEOUT_S = 1.0  # the host's probe waits a little longer (runner.health)
CACHE_S = 1.0  # probes in a burst share one ping


@dataclass(frozen=True)
class Readiness:
    reachable: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"engine_reachable": self.reachable, "engine_error": self.error}


class EngineProbe:
    """Pings the engine at a unix socket; the answer is kept for CACHE_S seconds."""

    def __init__(
        self,
        socket_path: str | None,
        timeout: float = PING_TIMEOUT_S,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.socket_path = socket_path
        self.timeout = timeout
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Readiness] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EngineProbe:
        """The engine the service uses: DOCKER_HOST, a unix:// socket in the runner."""
        host = environ.get("DOCKER_HOST", "")
        return cls(host.removeprefix("unix://") if host.startswith("unix://") else None)

    def check(self) -> Readiness:
        with self._lock:  # one ping at a time; the others take its answer
            now = self._clock()
            if self._last is not None and now - self._last[0] < self.cache_s:
                return self._last[1]
            answer = self._ping()
            self._last = (self._clock(), answer)
            return answer

    def _ping(self) -> Readiness:
        from roscoe.engine.connect import unreachable

        if self.socket_path is None:
            return Readiness(False, "the service has no engine socket (DOCKER_HOST)")
        why = unreachable(self.socket_path, self.timeout)
        return Readiness(why is None, why)
