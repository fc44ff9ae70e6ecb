"""The engine seam: every call roscoe makes to Docker or Podman goes through `Engine`.

Core modules receive an Engine and never import the docker SDK themselves; unit tests hand
them a fake with the same methods, and integration tests a real Engine on each engine.
Importing the docker SDK costs ~150 ms, more than `roscoe run` may add to the engine's own
time, so on a unix socket the first contact (GET /_ping) and the one-shot run's calls go over
`wire.Wire` (standard library), and the SDK client (`engine.api`) is created on first use by
the rarer calls: pulls, the runner container, logs. tcp:// and ssh:// endpoints use the SDK
for everything (`wire.SdkWire` makes the same calls through it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from roscoe.engine.detect import Endpoint, Probe, locate, runtime_choice, socket_error
from roscoe.engine.wire import Raw, SdkWire, Wire, WireError, quoted
from roscoe.errors import EngineError, ImageError

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


class Engine:
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
            info = self.api.info()
        except Exception:
            return None
        options = " ".join(info.get("SecurityOptions") or [])
        if "rootless" in options:
            return True
        host = info.get("host") or {}
        if isinstance(host, dict) and "security" in host:
            return bool(host["security"].get("rootless"))
        return False

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # -- images ---------------------------------------------------------------------------
    def image_inspect(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when it is not present locally."""
        import docker.errors

        try:
            return dict(self.api.inspect_image(ref))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.NotFound:
            return None

    def pull_stream(self, repository: str, tag: str) -> Iterator[dict[str, Any]]:
        """The engine's pull events, decoded (roscoe.pull folds them into progress).

        Errors the engine answers at once (Docker: unknown manifest, unreachable registry)
        raise ImageError here; Podman sends the same inside the stream, which the caller checks.
        The SDK's pull has no read timeout, so a silent engine does not end it.
        """
        import docker.errors

        from roscoe.pull import pull_failure

        ref = f"{repository}@{tag}" if ":" in tag else f"{repository}:{tag}"
        try:
            events = self.api.pull(repository, tag=tag, stream=True, decode=True)
        except docker.errors.APIError as exc:
            raise pull_failure(ref, _explain(exc)) from exc
        except Exception as exc:  # the engine's socket itself failed
            raise EngineError(
                f"{self.kind} stopped answering while pulling {ref}: {_explain(exc)}"
            ) from exc

        def guarded() -> Iterator[dict[str, Any]]:
            try:
                yield from events
            except docker.errors.APIError as exc:
                raise pull_failure(ref, _explain(exc)) from exc
            except Exception as exc:
                raise EngineError(
                    f"{self.kind} stopped answering while pulling {ref}: {_explain(exc)}"
                ) from exc

        return guarded()

    # -- containers -----------------------------------------------------------------------
    def containers(self, labels: Mapping[str, str], all: bool = True) -> list[dict[str, Any]]:
        """Containers carrying every label given (key=value)."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return list(self.api.containers(all=all, filters=filters))

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self.api.inspect_container(ref))
        except docker.errors.NotFound:
            return None

    def remove_container(self, ref: str, force: bool = True) -> bool:
        """Remove a container; False if it was already gone."""
        import docker.errors

        try:
            self.api.remove_container(ref, force=force, v=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            # Removal already under way (e.g. AutoRemove, or a concurrent gc): it will be gone.
            if exc.status_code == 409 and "in progress" in str(exc.explanation or ""):
                return False
            raise
        return True

    def logs(self, ref: str, **kwargs: Any) -> Iterator[bytes] | bytes:
        return self.api.logs(ref, **kwargs)  # type: ignore[no-any-return]

    # -- one-shot runs ----------------------------------------------------------------------
    # What roscoe.runs.execute needs, and nothing SDK-shaped leaks out. Failures on a run's
    # container raise EngineError with exit code 125 (the engine failed during the run);
    # an absent image raises ImageError (4). Unit tests fake exactly these methods.
    def run_create(
        self,
        *,
        name: str,
        image: str,
        entrypoint: list[str],
        command: list[str],
        user: str,
        workdir: str,
        env: Mapping[str, str],
        labels: Mapping[str, str],
        binds: list[str],
        network: str,
        memory_bytes: int,
        cpus: float | None,
        pids_limit: int,
        tmpfs: Mapping[str, str],
        userns: str | None = None,
    ) -> str:
        """Create (not start) a locked-down run container; return its id."""
        host_config: dict[str, Any] = {
            "Binds": binds,
            "NetworkMode": network,
            "Memory": memory_bytes,
            "MemorySwap": memory_bytes,  # no swap beyond the memory limit
            "PidsLimit": pids_limit,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            "Tmpfs": dict(tmpfs),
        }
        if cpus:
            host_config["NanoCpus"] = int(cpus * 1e9)
        if userns:
            host_config["UsernsMode"] = userns  # podman's keep-id (the SDK would refuse it)
        body = {
            "Image": image,
            "Entrypoint": entrypoint,
            "Cmd": command,
            "User": user,
            "WorkingDir": workdir,
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": dict(labels),
            "HostConfig": host_config,
            "AttachStdout": True,
            "AttachStderr": True,
            "OpenStdin": False,
            "Tty": False,
        }
        try:
            created = self.wire.call("POST", "/containers/create", params={"name": name}, body=body)
        except WireError as exc:
            if exc.status == 404:  # the container does not exist yet: only the image can be missing
                raise ImageError(
                    f"image {image} is not present on {self.kind}",
                    hint="pull or build it first (`roscoe image pull`, `make build-image`), "
                    "or name another with --image",
                ) from exc
            raise _run_error("could not create the run container", exc) from exc
        except OSError as exc:
            raise _run_error("could not create the run container", exc) from exc
        return str(created["Id"])

    def run_attach(self, container_id: str) -> OutputStream:
        """Attach to stdout and stderr BEFORE start, so not one byte of output is missed."""
        try:
            raw = self.wire.hijack(
                f"/containers/{quoted(container_id)}/attach",
                params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0},
            )
        except (WireError, OSError) as exc:
            raise _run_error("could not attach to the run container", exc) from exc
        return OutputStream(raw)

    def run_start(self, container_id: str) -> None:
        try:
            self.wire.call("POST", f"/containers/{quoted(container_id)}/start")
        except (WireError, OSError) as exc:
            raise _run_error("could not start the run container", exc) from exc

    def run_wait(self, container_id: str, timeout: float | None = None) -> int:
        """Block until the container exits; its exit code."""
        try:
            result = self.wire.call(
                "POST",
                f"/containers/{quoted(container_id)}/wait",
                timeout=timeout,
                forever=timeout is None,
            )
        except (WireError, OSError) as exc:
            raise _run_error("lost track of the run container", exc) from exc
        return int((result or {}).get("StatusCode", -1))

    def run_kill(self, container_id: str) -> None:
        """SIGKILL the container; nothing to do when it has already stopped or gone."""
        try:
            self.wire.call("POST", f"/containers/{quoted(container_id)}/kill")
        except WireError as exc:
            if exc.status in (404, 409) or "not running" in exc.message:
                return
            raise _run_error("could not kill the run container", exc) from exc
        except OSError as exc:
            raise _run_error("could not kill the run container", exc) from exc

    def run_state(self, container_id: str) -> dict[str, Any]:
        """What a finished run needs from inspect: still running?, exit code, OOMKilled, image."""
        try:
            found = self.wire.call("GET", f"/containers/{quoted(container_id)}/json")
        except WireError as exc:
            if exc.status == 404:
                return {}
            raise _run_error("could not inspect the run container", exc) from exc
        except OSError as exc:
            raise _run_error("could not inspect the run container", exc) from exc
        state = found.get("State") or {}
        return {
            "running": bool(state.get("Running")) or state.get("Status") == "running",
            "exit_code": state.get("ExitCode"),
            "oom_killed": bool(state.get("OOMKilled")),
            "image_id": found.get("Image"),
            "error": state.get("Error") or None,
        }

    def run_remove(self, container_id: str) -> None:
        try:
            self.wire.call(
                "DELETE", f"/containers/{quoted(container_id)}", params={"force": 1, "v": 1}
            )
        except WireError as exc:
            # Gone already, or removal under way (a concurrent gc): either way it will be gone.
            if exc.status == 404 or (exc.status == 409 and "in progress" in exc.message):
                return
            raise _run_error("could not remove the run container", exc) from exc
        except OSError as exc:
            raise _run_error("could not remove the run container", exc) from exc

    def podman_rootless(self) -> bool:
        """True for a rootless Podman (runs then need the keep-id user namespace). Cached."""
        if self.kind != "podman":
            return False
        if os.getuid() == 0 and self.endpoint.socket_path is not None:
            return False  # root reaching a local socket is talking to a rootful Podman
        cached = getattr(self, "_podman_rootless", None)
        if cached is None:
            cached = bool(self.rootless())
            self._podman_rootless = cached
        return cached

    # -- runner container -----------------------------------------------------------------
    # The long-lived runner (`roscoe server ...`): create/start/stop it and read its logs.
    def create_container(self, container: Mapping[str, Any], host: Mapping[str, Any]) -> str:
        """Create a container from (create_container kwargs, create_host_config kwargs)."""
        import docker.errors

        from roscoe.errors import ImageError, OperationFailed

        try:
            host_config = self.api.create_host_config(**host)
            created = self.api.create_container(host_config=host_config, **container)
        except docker.errors.ImageNotFound as exc:
            raise ImageError(
                f"image {container.get('image')} is not present on {self.kind}",
                hint="pull or build it first",
            ) from exc
        except docker.errors.APIError as exc:
            raise OperationFailed(
                f"{self.kind} refused to create container {container.get('name')}: {_explain(exc)}"
            ) from exc
        return str(created["Id"])

    def start_container(self, ref: str) -> None:
        import docker.errors

        from roscoe.errors import OperationFailed

        try:
            self.api.start(ref)
        except docker.errors.APIError as exc:
            raise OperationFailed(
                f"{self.kind} could not start the container: {_explain(exc)}"
            ) from exc

    def stop_container(self, ref: str, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after `timeout` seconds; False if the container was gone."""
        import docker.errors

        try:
            self.api.stop(ref, timeout=max(0, round(timeout)))
        except docker.errors.NotFound:
            return False
        return True

    def log_tail(self, ref: str, lines: int) -> bytes:
        """The last `lines` lines of a container's output, asked of the engine."""
        import docker.errors

        try:
            return bytes(self.api.logs(ref, stdout=True, stderr=True, tail=lines, stream=False))
        except docker.errors.APIError:
            return b""

    def stream_logs(
        self,
        ref: str,
        *,
        tty: bool = False,
        follow: bool = False,
        tail: int | str = "all",
        since: int | None = None,
        timestamps: bool = False,
        read_timeout: float = 60.0,
        still_running: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """A container's output as (stream, bytes) pieces: 1 stdout, 2 stderr; never slurped.

        The tail is asked of the engine. Silence never ends a followed stream: the SDK's read
        timeout would (docker-py #931), and Podman sends its response headers only with the
        first output (podman #23712), so the request waits without a read timeout, in a
        reader thread; every `read_timeout` seconds of silence `still_running()` is asked
        whether to keep waiting (a stream that outlives its container must not hang).
        """
        import queue
        import threading

        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "follow": int(follow),
            "timestamps": int(timestamps),
            "tail": str(tail),
        }
        if since is not None:
            params["since"] = since
        url = self.api._url("/containers/{0}/logs", ref)
        response = self.api._get(url, params=params, stream=True, timeout=(30, None))
        self.api._raise_for_status(response)
        fp = response.raw._fp  # http.client's response
        # Engines send each log line as its own HTTP chunk: http.client would hand them over
        # one by one (a million calls for a million lines), so the body is read from the
        # socket's buffer in large blocks and de-chunked here.
        body = fp.fp
        unchunk = Unchunk() if fp.chunked else None
        decoder = None if tty else LogFrames()
        pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=64)

        def read() -> None:
            try:
                while True:
                    block = body.read1(256 * 1024)
                    if not block:
                        break
                    data = unchunk.feed(block) if unchunk is not None else block
                    if data:
                        pieces.put(data)
                    if unchunk is not None and unchunk.done:
                        break
            except BaseException as exc:  # handed to the consumer, which decides
                pieces.put(exc)
            pieces.put(None)

        reader = threading.Thread(target=read, name="roscoe-logs", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = pieces.get(timeout=read_timeout if follow else None)
                except queue.Empty:
                    if still_running is None or still_running():
                        continue
                    return
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if decoder is None:
                    yield 1, item
                else:
                    yield from decoder.feed(item)
        finally:
            _shutdown(response)


class Unchunk:
    """Decodes HTTP/1.1 chunked transfer encoding from blocks cut anywhere."""

    def __init__(self) -> None:
        self._pending = b""
        self._left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self.done = False

    def feed(self, block: bytes) -> bytes:
        buf = self._pending + block if self._pending else block
        self._pending = b""
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while pos < size and not self.done:
            if self._left > 0:
                take = min(self._left, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self._left = -2  # the CRLF after the data
                continue
            if self._left < 0:
                skip = min(-self._left, size - pos)
                pos += skip
                self._left += skip
                continue
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                self._pending = buf[pos:]
                break
            length = int(buf[pos:line_end].split(b";", 1)[0], 16)
            pos = line_end + 2
            if length == 0:
                self.done = True  # trailers, if any, are not needed
                break
            self._left = length
        return b"".join(out)


class LogFrames:
    """Decodes the engine's multiplexed log stream: 8-byte headers (stream, size) + payload."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Whole frames found so far, consecutive frames of one stream joined."""
        buf = self._pending + data if self._pending else data
        out: list[tuple[int, bytes]] = []
        parts: list[bytes] = []
        current = 0
        pos, size = 0, len(buf)
        while pos + 8 <= size:
            stream = buf[pos]
            end = pos + 8 + int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if end > size:
                break
            if stream != current and parts:
                out.append((current, b"".join(parts)))
                parts = []
            current = stream
            parts.append(buf[pos + 8 : end])
            pos = end
        if parts:
            out.append((current, b"".join(parts)))
        self._pending = buf[pos:]
        return out


def _shutdown(response: Any) -> None:
    """End a streaming response now, waking a reader blocked on its socket."""
    import contextlib
    import socket

    raw = getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):  # closing a dead stream: nothing left to do
        response.close()


def _explain(exc: Any) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


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


# -- one-shot runs: the output stream ---------------------------------------------------------
_STREAMS = {1: "stdout", 2: "stderr"}
_CHUNK = 64 * 1024


class OutputStream:
    """A container's attach stream as (stream name, bytes) chunks, in arrival order.

    The engine multiplexes stdout and stderr into frames (an 8-byte header: stream number
    and length). Chunks are handed on as soon as they arrive, not when a frame is complete,
    so large frames never sit in memory.
    """

    def __init__(self, raw: Raw):
        # A taken-over connection with no read timeout: a silent script must not end it.
        self._raw = raw

    def _exactly(self, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            more = self._raw.read1(count - len(data))
            if not more:
                return None
            data += more
        return data

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            header = self._exactly(8)
            if header is None:
                return
            name = _STREAMS.get(header[0], "stdout")
            left = int.from_bytes(header[4:8], "big")
            while left > 0:
                data = self._raw.read1(min(left, _CHUNK))
                if not data:
                    return
                left -= len(data)
                yield name, data

    def close(self) -> None:
        self._raw.close()


def _run_error(what: str, exc: BaseException) -> EngineError:
    from roscoe.constants import ExitCode

    reason = (
        getattr(exc, "explanation", None)
        or getattr(exc, "message", None)
        or str(exc)
        or type(exc).__name__
    )
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    reason = str(reason).strip().splitlines()[0][:300] if str(reason).strip() else what
    return EngineError(f"{what}: {reason}", exit_code=ExitCode.ENGINE_DURING_RUN)
