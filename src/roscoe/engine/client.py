"""The engine seam: every call roscoe makes to Docker or Podman goes through `Engine`.

Core modules receive an Engine and never import the docker SDK themselves; unit tests hand
them a fake with the same methods, and integration tests a real Engine on each engine.
Importing the docker SDK costs ~150 ms, more than `roscoe run` may add to the engine's own
time, so on a unix socket the first contact (GET /_ping) and the one-shot run's calls go over
`wire.Wire` (standard library), and the SDK client (`engine.api`) is created on first use by
the rarer calls: pulls, the runner container, logs. tcp:// and ssh:// endpoints use the SDK
for everything (`wire.SdkWire` makes the same calls through it).

Engine's calls are grouped by feature: identity, images and containers here; a one-shot
run's in `runs.py`; the runner container's in `runner.py`; stream decoding in `streams.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from roscoe.engine.detect import Endpoint, Probe, locate, runtime_choice, socket_error
from roscoe.engine.runner import RunnerCalls, explain
from roscoe.engine.runs import RunCalls
from roscoe.engine.wire import SdkWire, Wire, WireError, quoted
from roscoe.errors import EngineError, OperationFailed, RoscoeError

if TYPE_CHECKING:
    import docker

log = logging.getLogger("roscoe.engine")

# Docker 19.03 / Podman 3; older engines lack what runs need (memory-swap, cap-drop rules).
MIN_API_VERSION = "1.40"
# The newest API version roscoe's requests are written against. Negotiation, as the docker
# CLI does it: the engine's version from /_ping, capped here (Docker 29 refuses below 1.44).
MAX_API_VERSION = "1.47"


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself."""

    kind: str  # "docker" or "podman", from the version call, never from the socket path
    version: str
    api_version: str  # negotiated: what roscoe's requests use
    os: str = ""


def kind_from_version(payload: Mapping[str, Any]) -> str:
    """Docker or Podman, from the /version answer (podman-mac-helper serves docker.sock)."""
    names = [str(c.get("Name", "")) for c in payload.get("Components") or []]
    platform = str((payload.get("Platform") or {}).get("Name", ""))
    if any("podman" in n.lower() for n in names) or "podman" in platform.lower():
        return "podman"
    return "docker"


def engine_version(payload: Mapping[str, Any], kind: str) -> str:
    for component in payload.get("Components") or []:
        name = str(component.get("Name", "")).lower()
        if (kind == "podman" and "podman" in name) or (kind == "docker" and name == "engine"):
            return str(component.get("Version", payload.get("Version", "")))
    return str(payload.get("Version", ""))


class Engine(RunCalls, RunnerCalls):
    """A connected engine. Create one with `connect()`; pass it down; close it at the end."""

    def __init__(
        self,
        endpoint: Endpoint,
        info: EngineInfo,
        *,
        api: docker.APIClient | None = None,
        timeout: int = 60,
    ):
        self.endpoint = endpoint
        self.info = info
        self._api = api
        self._timeout = timeout
        self._cpu_count: int | None = None
        # The transport of the hot path: stdlib on a unix socket, else through the SDK.
        self.wire: Wire | SdkWire
        if endpoint.socket_path and api is None:
            self.wire = Wire(endpoint.socket_path, info.api_version, timeout)
        else:
            self.wire = SdkWire(self.api)

    @property
    def api(self) -> docker.APIClient:
        """The docker SDK's low-level client, created on first use (it is slow to import)."""
        if self._api is None:
            self._api = _client(self.endpoint, self._timeout, self.info.api_version)
        return self._api

    # -- identity -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.info.kind

    def describe(self) -> str:
        return (
            f"{self.info.kind} {self.info.version} at {self.endpoint.url} ({self.endpoint.source})"
        )

    def rootless(self) -> bool | None:
        """True when the engine runs without root (rootless Docker or Podman)."""
        try:
            info = self.wire.call("GET", "/info")
        except (WireError, OSError):
            return None
        options = " ".join(info.get("SecurityOptions") or [])
        if "rootless" in options:
            return True
        host = info.get("host") or {}
        if isinstance(host, dict) and "security" in host:
            return bool(host["security"].get("rootless"))
        return False

    def cpu_count(self) -> int | None:
        """How many CPUs the engine has (GET /info NCPU: its view, not this machine's, which
        differs for a remote engine or one in a VM); None when it does not say. Cached."""
        if self._cpu_count is None:
            try:
                info = self.wire.call("GET", "/info")
            except (WireError, OSError) as exc:
                raise self._failed("could not ask the engine for its CPU count", exc) from exc
            count = info.get("NCPU") if isinstance(info, dict) else None
            self._cpu_count = count if isinstance(count, int) and count > 0 else 0
        return self._cpu_count or None

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # -- images ---------------------------------------------------------------------------
    def image_inspect(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when it is not present locally."""
        try:
            return dict(self.wire.call("GET", f"/images/{quoted(ref)}/json"))
        except WireError as exc:
            if exc.status == 404:
                return None
            raise self._failed(f"could not inspect image {ref}", exc) from exc
        except OSError as exc:
            raise self._failed(f"could not inspect image {ref}", exc) from exc

    def pull_stream(self, repository: str, tag: str) -> Iterator[dict[str, Any]]:
        """The engine's pull events, decoded (roscoe.images.pull folds them into progress).

        Errors the engine answers at once (Docker: unknown manifest, unreachable registry)
        raise ImageError here; Podman sends the same inside the stream, which the caller checks.
        The SDK's pull has no read timeout, so a silent engine does not end it.
        """
        import docker.errors

        from roscoe.engine.errors import pull_failure

        ref = f"{repository}@{tag}" if ":" in tag else f"{repository}:{tag}"
        try:
            events = self.api.pull(repository, tag=tag, stream=True, decode=True)
        except docker.errors.APIError as exc:
            raise pull_failure(ref, explain(exc)) from exc
        except Exception as exc:  # the engine's socket itself failed
            raise EngineError(
                f"{self.kind} stopped answering while pulling {ref}: {explain(exc)}"
            ) from exc

        def guarded() -> Iterator[dict[str, Any]]:
            try:
                yield from events
            except docker.errors.APIError as exc:
                raise pull_failure(ref, explain(exc)) from exc
            except Exception as exc:
                raise EngineError(
                    f"{self.kind} stopped answering while pulling {ref}: {explain(exc)}"
                ) from exc

        return guarded()

    # -- containers -----------------------------------------------------------------------
    # Over the wire like a run's calls: `server status`, `gc` and `doctor` then never load the
    # docker SDK either.
    def containers(self, labels: Mapping[str, str], all: bool = True) -> list[dict[str, Any]]:
        """Containers carrying every label given (key=value)."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            found = self.wire.call(
                "GET", "/containers/json", params={"all": all, "filters": filters}
            )
        except (WireError, OSError) as exc:
            raise self._failed("could not list containers", exc) from exc
        return list(found or [])

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        try:
            return dict(self.wire.call("GET", f"/containers/{quoted(ref)}/json"))
        except WireError as exc:
            if exc.status == 404:
                return None
            raise self._failed(f"could not inspect container {ref}", exc) from exc
        except OSError as exc:
            raise self._failed(f"could not inspect container {ref}", exc) from exc

    def remove_container(self, ref: str, force: bool = True) -> bool:
        """Remove a container; False if it was already gone."""
        try:
            self.wire.call(
                "DELETE", f"/containers/{quoted(ref)}", params={"force": force, "v": True}
            )
        except WireError as exc:
            # Removal already under way (e.g. AutoRemove, or a concurrent gc): it will be gone.
            if exc.status == 404 or (exc.status == 409 and "in progress" in exc.message):
                return False
            raise self._failed(f"could not remove container {ref}", exc) from exc
        except OSError as exc:
            raise self._failed(f"could not remove container {ref}", exc) from exc
        return True

    def _failed(self, what: str, exc: BaseException) -> RoscoeError:
        """The socket failing is no reachable engine (3); the engine refusing, a failure (1)."""
        if isinstance(exc, OSError):
            return EngineError(f"{what}: the {self.kind} engine stopped answering: {exc}")
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return OperationFailed(f"{what}: {self.kind} said: {reason}")


def connect(runtime: str | None = None, probe: Probe | None = None, timeout: int = 60) -> Engine:
    """Find the engine, connect, and learn what it is. Raises EngineError (exit 3)."""
    probe = probe or Probe()
    family = runtime_choice(runtime, probe.env)
    endpoint = locate(family, probe)
    api: docker.APIClient | None = None
    if endpoint.socket_path:
        info = _ping(Wire(endpoint.socket_path, timeout=timeout), endpoint)
    else:
        api = _client(endpoint, timeout, "auto", _tls(endpoint, probe))
        info = _info_from_version(SdkWire(api), endpoint)
    log.debug("engine: %s %s, API %s", info.kind, info.version, info.api_version)
    problem = None
    if family not in ("auto", info.kind):
        problem = EngineError(
            f"{endpoint.source} ({endpoint.url}) is a {info.kind} engine, but --runtime "
            f"{family} was asked for",
            hint=f"point {endpoint.source} at a {family} socket, or use --runtime {info.kind}",
        )
    elif _older(info.api_version, MIN_API_VERSION):
        problem = EngineError(
            f"{info.kind} {info.version} is too old (API {info.api_version}; roscoe needs "
            f"{MIN_API_VERSION} or newer)",
            hint=f"upgrade {info.kind} to a version from the last few years",
        )
    if problem is not None:
        if api is not None:
            api.close()
        raise problem
    return Engine(endpoint, info, api=api, timeout=timeout)


def _ping(wire: Wire, endpoint: Endpoint) -> EngineInfo:
    """Who the engine is, from the headers of /_ping: what the engine says about itself."""
    try:
        headers = wire.ping()
    except (OSError, WireError, ValueError) as exc:
        raise _connect_error(endpoint, exc) from exc
    # "Docker/20.10.24 (linux)" or "Libpod/4.3.1 (linux)"; Podman also sends its own header.
    product, _, rest = headers.get("server", "").partition("/")
    version, _, os_part = rest.partition(" ")
    if "libpod-api-version" in headers or product.lower() == "libpod":
        kind = "podman"
        version = version if product.lower() == "libpod" else headers["libpod-api-version"]
    elif product.lower() == "docker" and version:
        kind = "docker"
    else:  # an engine (or proxy) that does not say: ask /version, which always does
        wire.api_version = None
        return _info_from_version(wire, endpoint)
    return EngineInfo(
        kind=kind,
        version=version,
        api_version=_negotiate(headers.get("api-version", "")),
        os=headers.get("ostype", os_part.strip("()")),
    )


def _info_from_version(wire: Wire | SdkWire, endpoint: Endpoint) -> EngineInfo:
    try:
        payload = wire.call("GET", "/version", versioned=False)
    except Exception as exc:  # socket errors, requests' own errors, refusals
        raise _connect_error(endpoint, exc) from exc
    kind = kind_from_version(payload)
    return EngineInfo(
        kind=kind,
        version=engine_version(payload, kind),
        api_version=_negotiate(str(payload.get("ApiVersion", ""))),
        os=str(payload.get("Os", "")),
    )


def _negotiate(server: str) -> str:
    """The API version to speak: the engine's own, capped at what roscoe is written for."""
    try:
        return server if Version(server) <= Version(MAX_API_VERSION) else MAX_API_VERSION
    except InvalidVersion:
        return server


def _older(version: str, minimum: str) -> bool:
    try:
        return Version(version) < Version(minimum)
    except InvalidVersion:
        return False


def _tls(endpoint: Endpoint, probe: Probe) -> Any:
    if endpoint.source == "DOCKER_HOST" and probe.env.get("DOCKER_TLS_VERIFY"):
        import docker

        return docker.utils.kwargs_from_env(environment=dict(probe.env)).get("tls", False)
    return False


def _client(endpoint: Endpoint, timeout: int, version: str, tls: Any = False) -> docker.APIClient:
    """The SDK's client. version="auto" lets the SDK negotiate (tcp/ssh); on a unix socket the
    version /_ping negotiated is passed on, which spares the SDK a second round trip."""
    import docker
    import docker.errors

    try:
        api = docker.APIClient(base_url=endpoint.url, version=version, timeout=timeout, tls=tls)
    except docker.errors.DockerException as exc:
        raise _connect_error(endpoint, exc) from exc
    if log.isEnabledFor(logging.DEBUG):
        api.hooks["response"].append(_log_call)
    return api


def _log_call(response: Any, *args: Any, **kwargs: Any) -> None:
    request = response.request
    log.debug("engine call: %s %s -> %s", request.method, request.path_url, response.status_code)


def _connect_error(endpoint: Endpoint, exc: BaseException) -> EngineError:
    """Map a failed first contact to a precise error, looking for the OS-level cause."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None and endpoint.socket_path:
            return socket_error(
                endpoint.socket_path, cause, endpoint.source if endpoint.explicit else None
            )
        cause = cause.__cause__ or cause.__context__
    reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if endpoint.explicit:
        return EngineError(
            f"{endpoint.source} ({endpoint.url}) is set but the engine there is unreachable: "
            f"{reason}",
            hint=f"check that the engine is running and the address is right, or unset "
            f"{endpoint.source}",
        )
    return EngineError(
        f"the engine at {endpoint.url} does not answer: {reason}",
        hint="restart the engine, or name another with DOCKER_HOST or --runtime",
    )
