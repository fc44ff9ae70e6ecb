"""What every group of engine calls shares: where the engine is, what it said, the transports.

Importing the docker SDK costs ~150 ms, more than `roscoe run` may add to the engine's own
time, so on a unix socket the first contact and the one-shot run's calls go over `wire.Wire`
(standard library), and the SDK client (`_sdk`) is created on first use by the rarer calls:
pulls, the runner container, logs. tcp:// and ssh:// endpoints use the SDK for everything
(`wire.SdkWire` makes the same calls through it). Both transports are private to engine/.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.engine.detect import Endpoint
from roscoe.engine.errors import call_failed, connect_failure
from roscoe.engine.facts import FactsCache, docker_facts, podman_facts
from roscoe.engine.protocols import EngineFacts, EngineInfo
from roscoe.engine.wire import SdkWire, Wire, WireError

if TYPE_CHECKING:
    import docker

log = logging.getLogger("roscoe.engine")


class EngineBase:
    """A connected engine's state; the calls are in Engine and its parts (runs.py, runner.py)."""

    def __init__(
        self,
        endpoint: Endpoint,
        info: EngineInfo,
        *,
        sdk: docker.APIClient | None = None,
        timeout: int = 60,
        facts: EngineFacts | None = None,
        facts_file: Path | None = None,
    ):
        self.endpoint = endpoint
        self.info = info
        self._sdk_client = sdk
        self._timeout = timeout
        self._facts = facts
        self._facts_cache = FactsCache(facts_file) if facts_file else None
        self._cpu_count: int | None = None
        # The transport of the hot path: stdlib on a unix socket, else through the SDK.
        self._wire: Wire | SdkWire
        if endpoint.socket_path and sdk is None:
            self._wire = Wire(endpoint.socket_path, info.api_version, timeout)
        else:
            self._wire = SdkWire(self._sdk)

    @property
    def kind(self) -> str:
        return self.info.kind

    def rootless(self) -> bool | None:
        """True when the engine runs without root (rootless Docker or Podman); None when it
        does not say."""
        return self.facts().rootless

    def facts(self) -> EngineFacts:
        """Rootless or not, cgroups, runtimes (engine/facts.py): asked once, then kept.

        Podman's compat /info does not say rootless, so Podman is asked through its own API.
        Empty facts when the engine does not answer.
        """
        if self._facts is not None:
            return self._facts
        socket_path = self.endpoint.socket_path
        cache = self._facts_cache if socket_path else None
        found = cache.get(socket_path) if cache and socket_path else None
        if found is None:
            try:
                if self.kind == "podman":
                    found = podman_facts(self._wire.call("GET", "/libpod/info"))
                else:
                    found = docker_facts(self._wire.call("GET", "/info"))
            except (WireError, OSError, AttributeError) as exc:
                log.debug("engine facts: %s", exc)
                return EngineFacts()
            if cache and socket_path:
                cache.put(socket_path, found)
        self._facts = found
        return found

    def cpu_count(self) -> int | None:
        """How many CPUs the engine has (GET /info NCPU: its view, not this machine's, which
        differs for a remote engine or one in a VM); None when it does not say. Cached."""
        if self._cpu_count is None:
            try:
                info = self._wire.call("GET", "/info")
            except (WireError, OSError) as exc:
                raise call_failed(
                    self.kind, "could not ask the engine for its CPU count", exc
                ) from exc
            count = info.get("NCPU") if isinstance(info, dict) else None
            self._cpu_count = count if isinstance(count, int) and count > 0 else 0
        return self._cpu_count or None

    @property
    def _sdk(self) -> docker.APIClient:
        """The docker SDK's low-level client, created on first use (it is slow to import)."""
        if self._sdk_client is None:
            self._sdk_client = sdk_client(self.endpoint, self._timeout, self.info.api_version)
        return self._sdk_client

    def close(self) -> None:
        if self._sdk_client is not None:
            self._sdk_client.close()


def sdk_client(
    endpoint: Endpoint, timeout: int, version: str, tls: Any = False
) -> docker.APIClient:
    """The SDK's client. version="auto" lets the SDK negotiate (tcp/ssh); on a unix socket the
    version /_ping negotiated is passed on, which spares the SDK a second round trip."""
    import docker
    import docker.errors

    try:
        api = docker.APIClient(base_url=endpoint.url, version=version, timeout=timeout, tls=tls)
    except docker.errors.DockerException as exc:
        raise connect_failure(endpoint, exc) from exc
    if log.isEnabledFor(logging.DEBUG):
        api.hooks["response"].append(_log_call)
    return api


def _log_call(response: Any, *args: Any, **kwargs: Any) -> None:
    request = response.request
    log.debug("engine call: %s %s -> %s", request.method, request.path_url, response.status_code)
