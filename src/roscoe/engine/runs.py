"""The engine calls of a one-shot run (`roscoe.runs.execute`), as a part of `Engine`.

They go over `self.wire`: the standard library on a unix socket, so a run never loads the
docker SDK. Failures on a run's container raise EngineError with exit code 125 (the engine
failed during the run); an absent image raises ImageError (4).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from roscoe.engine.detect import Endpoint
from roscoe.engine.streams import OutputStream
from roscoe.engine.wire import SdkWire, Wire, WireError, quoted
from roscoe.errors import EngineError, ImageError


class RunCalls:
    """Mixed into Engine; unit tests fake exactly these methods."""

    # Provided by Engine.
    wire: Wire | SdkWire
    kind: str
    endpoint: Endpoint
    rootless: Callable[[], bool | None]

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
            # Never the image's HEALTHCHECK (the runner image has one for its service): Docker
            # would run it in the sandbox every 30 s, and it can never succeed there.
            "Healthcheck": {"Test": ["NONE"]},
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


def _run_error(what: str, exc: BaseException) -> EngineError:
    from roscoe.errors import ExitCode

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
