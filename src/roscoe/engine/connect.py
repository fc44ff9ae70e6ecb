"""Connecting: find the engine (detect.py), make first contact, learn what it is, negotiate
the API version, and hand back an `Engine`. Raises EngineError (exit 3) when it cannot.

The first contact on a unix socket is GET /_ping over the standard library (wire.py), whose
headers name the engine and its API version; tcp:// and ssh:// endpoints go through the
docker SDK, which negotiates for itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.engine.base import sdk_client
from roscoe.engine.detect import Endpoint, Probe, check_explicit, locate, runtime_choice
from roscoe.engine.engine import Engine
from roscoe.engine.errors import connect_failure
from roscoe.engine.protocols import EngineFacts, EngineInfo
from roscoe.engine.wire import SdkWire, Wire, WireError
from roscoe.errors import EngineError

if TYPE_CHECKING:
    import docker

log = logging.getLogger("roscoe.engine")

# Docker 19.03 / Podman 3; older engines lack what runs need (memory-swap, cap-drop rules).
MIN_API_VERSION = "1.40"
# The newest API version roscoe's requests are written against. Negotiation, as the docker
# CLI does it: the engine's version from /_ping, capped here (Docker 29 refuses below 1.44).
MAX_API_VERSION = "1.47"


def connect(
    runtime: str | None = None,
    probe: Probe | None = None,
    timeout: int = 60,
    *,
    endpoint: Endpoint | None = None,
    facts: EngineFacts | None = None,
    facts_file: Path | None = None,
) -> Engine:
    """Find the engine, connect, and learn what it is. Raises EngineError (exit 3).

    `endpoint` names the engine outright (a setting such as run.gvisor_host) instead of
    detection; `facts` are the engine's facts when the caller already knows them, and
    `facts_file` keeps them between invocations (engine/facts.py).
    """
    probe = probe or Probe()
    family = runtime_choice(runtime, probe.env)
    if endpoint is not None:
        check_explicit(endpoint, probe)
    else:
        endpoint = locate(family, probe)
    sdk: docker.APIClient | None = None
    if endpoint.socket_path:
        info = _ping(Wire(endpoint.socket_path, timeout=timeout), endpoint)
    else:
        sdk = sdk_client(endpoint, timeout, "auto", _tls(endpoint, probe))
        info = _info_from_version(SdkWire(sdk), endpoint)
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
        if sdk is not None:
            sdk.close()
        raise problem
    return Engine(endpoint, info, sdk=sdk, timeout=timeout, facts=facts, facts_file=facts_file)


def connect_url(url: str, source: str) -> Engine:
    """Connect to the engine at `url`, named by the setting `source` (e.g. run.gvisor_host)."""
    return connect("auto", endpoint=Endpoint(url=url, source=source))


def unreachable(socket_path: str, timeout: float = 1.0) -> str | None:
    """Why nothing answers GET /_ping on the unix socket at `socket_path` now, or None when
    an engine does. One short request; never raises (the execution service's readiness)."""
    try:
        Wire(socket_path, timeout=timeout).ping()
    except WireError as exc:
        return f"the engine answered {exc.status}: {exc.message}"
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"nothing answers on {socket_path}: {why}"
    except Exception as exc:  # an answer that is not HTTP
        return f"{type(exc).__name__}: {exc}"
    return None


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


def _ping(wire: Wire, endpoint: Endpoint) -> EngineInfo:
    """Who the engine is, from the headers of /_ping: what the engine says about itself."""
    try:
        headers = wire.ping()
    except (OSError, WireError, ValueError) as exc:
        raise connect_failure(endpoint, exc) from exc
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
        raise connect_failure(endpoint, exc) from exc
    kind = kind_from_version(payload)
    return EngineInfo(
        kind=kind,
        version=engine_version(payload, kind),
        api_version=_negotiate(str(payload.get("ApiVersion", ""))),
        os=str(payload.get("Os", "")),
    )


def _negotiate(server: str) -> str:
    """The API version to speak: the engine's own, capped at what roscoe is written for."""
    compared = _compare(server, MAX_API_VERSION)
    return server if compared is None or compared <= 0 else MAX_API_VERSION


def _older(version: str, minimum: str) -> bool:
    compared = _compare(version, minimum)
    return compared is not None and compared < 0


def _compare(a: str, b: str) -> int | None:
    """-1, 0 or 1 as version `a` is older, the same or newer than `b`; None when either is
    no version at all."""
    plain = [_dotted(a), _dotted(b)]
    if plain[0] is not None and plain[1] is not None:
        # The usual case (API versions such as 1.41): plain numbers, compared here, as
        # importing packaging costs every run several ms.
        x, y = plain[0], plain[1]
        width = max(len(x), len(y))
        x, y = x + (0,) * (width - len(x)), y + (0,) * (width - len(y))
        return (x > y) - (x < y)
    from packaging.version import InvalidVersion, Version

    try:
        first, second = Version(a), Version(b)
    except InvalidVersion:
        return None
    return (first > second) - (first < second)


def _dotted(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    if not all(part.isdigit() and part.isascii() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def _tls(endpoint: Endpoint, probe: Probe) -> Any:
    if endpoint.source == "DOCKER_HOST" and probe.env.get("DOCKER_TLS_VERIFY"):
        from docker.utils import kwargs_from_env

        return kwargs_from_env(environment=dict(probe.env)).get("tls", False)
    return False
