"""Engine failures in the user's words: the one place an engine's error becomes a RoscoeError.

Every engine call maps what went wrong through these functions, whichever transport made
it (`wire.Wire`, `wire.SdkWire` or the docker SDK):

- `status_of()` tells an engine that answered with an error (a status: 404, 409 ...) from
  one that did not answer at all (None: the socket failed);
- `reason()` is the engine's own words, on one line;
- the rest build the error a command raises, with the exit code that fits:
  `call_failed` (3 when the engine stopped answering, 1 when it refused),
  `run_failed` (125: the engine failed during a run), `image_missing` and
  `pull_failed`/`pull_failure` (4), `connect_failure` (3: the first contact failed).
"""

from __future__ import annotations

from roscoe.engine.detect import Endpoint, socket_error
from roscoe.engine.wire import WireError
from roscoe.errors import (
    EngineError,
    EngineUnreachable,
    ExitCode,
    ImageError,
    IsolationError,
    OperationFailed,
    RoscoeError,
)

_REASON_MAX = 300


def status_of(exc: BaseException) -> int | None:
    """The HTTP status the engine answered with, or None when it did not answer."""
    if isinstance(exc, WireError):
        return exc.status
    code = getattr(exc, "status_code", None)  # the docker SDK's APIError
    return code if isinstance(code, int) else None


def reason(exc: BaseException) -> str:
    """The engine's own words for a failure: the first line, at most 300 characters."""
    text = getattr(exc, "explanation", None) or getattr(exc, "message", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= _REASON_MAX else line[: _REASON_MAX - 3] + "..."


def missing(exc: BaseException) -> bool:
    """The engine says there is no such container or image."""
    return status_of(exc) == 404


def going_anyway(exc: BaseException) -> bool:
    """A removal that found the container gone, or its removal already under way (AutoRemove,
    a concurrent gc): either way it will be gone."""
    status = status_of(exc)
    return status == 404 or (status == 409 and "in progress" in reason(exc))


def state_changing(exc: BaseException) -> bool:
    """Podman refused a call because the container changed state under it ("container state
    improper"): a forced removal that found it stopped between its look and its kill, say,
    while a restart policy was at work. The same call a moment later finds it settled."""
    return "container state improper" in reason(exc)


def not_running(exc: BaseException) -> bool:
    """A kill that found the container already stopped, or gone. Docker answers 409 "is not
    running"; Podman 500 "can only kill running containers ... container state improper"."""
    why = reason(exc)
    return status_of(exc) in (404, 409) or "not running" in why or "can only kill running" in why


def call_failed(kind: str, what: str, exc: BaseException) -> RoscoeError:
    """A failed call: no answer is no reachable engine (exit 3); a refusal, a failure (1)."""
    if status_of(exc) is None:
        return EngineError(f"{what}: the {kind} engine stopped answering: {reason(exc)}")
    return OperationFailed(f"{what}: {kind} said: {reason(exc)}")


def run_failed(what: str, exc: BaseException) -> EngineError:
    """A call on a run's container failed: the engine failed during the run (exit 125).
    EngineUnreachable when it did not answer at all (the socket failed): how the run goes on
    is then not known, rather than refused."""
    if status_of(exc) is None:
        return EngineUnreachable(f"{what}: {reason(exc)}")
    return EngineError(f"{what}: {reason(exc)}", exit_code=ExitCode.ENGINE_DURING_RUN)


def image_missing(image: str, kind: str) -> ImageError:
    """A container could not be created because its image is not there (exit 4)."""
    return ImageError(
        f"image {image} is not present on {kind}",
        hint="pull or build it first (`roscoe image pull`, `make build-image`), "
        "or name another with --image",
    )


def pull_failed(kind: str, ref: str, exc: BaseException) -> RoscoeError:
    """A pull the engine refused (the registry's reason, exit 4), or one it stopped answering
    (exit 3)."""
    if status_of(exc) is None:
        return EngineError(f"{kind} stopped answering while pulling {ref}: {reason(exc)}")
    return pull_failure(ref, reason(exc))


def pull_failure(ref: str, why: str) -> ImageError:
    """One line with the registry's reason, and a hint that fits it."""
    text = why.strip().splitlines()[0] if why.strip() else "unknown error"
    if len(text) > _REASON_MAX:
        text = text[: _REASON_MAX - 3] + "..."
    lowered = text.lower()
    if any(
        word in lowered
        for word in ("unauthorized", "authentication required", "denied", "forbidden")
    ):
        hint = (
            "the registry wants credentials: `docker login REGISTRY` (or `podman login`), "
            "then pull again"
        )
    elif any(
        word in lowered
        for word in ("connection refused", "no such host", "i/o timeout", "dial tcp", "pinging")
    ):
        hint = (
            "the engine cannot reach the registry; check the address and that it is up, or "
            "work offline with an image present locally (`make build-image`, --use-local-image)"
        )
    elif any(word in lowered for word in ("manifest unknown", "not found", "name unknown")):
        hint = (
            "no such tag or repository in the registry; check the reference "
            "(`roscoe image show` prints the one in use)"
        )
    else:
        hint = "`roscoe --debug image pull` shows every event the engine sent"
    return ImageError(f"could not pull {ref}: {text}", hint=hint)


def connect_failure(endpoint: Endpoint, exc: BaseException) -> EngineError:
    """A failed first contact as a precise error, looking for the OS-level cause."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None and endpoint.socket_path:
            return socket_error(
                endpoint.socket_path, cause, endpoint.source if endpoint.explicit else None
            )
        cause = cause.__cause__ or cause.__context__
    why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if endpoint.explicit:
        return EngineError(
            f"{endpoint.source} ({endpoint.url}) is set but the engine there is unreachable: {why}",
            hint=f"check that the engine is running and the address is right, or unset "
            f"{endpoint.source}",
        )
    return EngineError(
        f"the engine at {endpoint.url} does not answer: {why}",
        hint="restart the engine, or name another with DOCKER_HOST or --runtime",
    )


GVISOR_RUNTIME = "runsc"  # the name gVisor's runtime is registered under (Docker) / has (Podman)
PODMAN_GVISOR_SOCKET = "/run/podman/podman-gvisor.sock"


def gvisor_hint(kind: str) -> str:
    """How to make gVisor usable on this kind of engine (docs/usage.md, "Isolation")."""
    if kind == "podman":
        return (
            "Podman's API ignores the runtime a client asks for, so gVisor needs a Podman API "
            "service of its own whose default runtime is runsc: install runsc (Debian/Ubuntu: "
            "`apt-get install runsc`), start `podman --runtime runsc --runtime-flag "
            f"network=none system service --time=0 unix://{PODMAN_GVISOR_SOCKET}` and set "
            f"ROSCOE_GVISOR_HOST=unix://{PODMAN_GVISOR_SOCKET} (or run.gvisor_host)"
        )
    return (
        "install runsc (Debian/Ubuntu: `apt-get install runsc`; elsewhere see gvisor.dev), "
        'register it in /etc/docker/daemon.json as {"runtimes": {"runsc": {"path": '
        '"/usr/bin/runsc"}}} and restart dockerd (`docker info` then lists runsc)'
    )


def unknown_runtime(exc: BaseException) -> bool:
    """Docker's answer to a runtime it does not know (400: 'Unknown runtime specified x')."""
    return status_of(exc) == 400 and "unknown runtime" in reason(exc).lower()


def unknown_runtime_error(kind: str, runtime: str, exc: BaseException) -> IsolationError:
    """A runtime the engine does not know, asked for at create: nothing was created."""
    return IsolationError(
        f"{kind} has no runtime '{runtime}': gVisor is not set up there ({reason(exc)})",
        hint=gvisor_hint(kind),
    )
