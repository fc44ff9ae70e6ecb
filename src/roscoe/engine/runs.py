"""The engine calls of a one-shot run (`protocols.RunEngine`), as a part of `Engine`.

They go over the wire: the standard library on a unix socket, so a run never loads the
docker SDK. Failures on a run's container raise EngineError with exit code 125 (the engine
failed during the run); an absent image raises ImageError (4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from roscoe.engine.base import EngineBase
from roscoe.engine.errors import (
    going_anyway,
    image_missing,
    missing,
    not_running,
    run_failed,
    unknown_runtime,
    unknown_runtime_error,
)
from roscoe.engine.facts import socket_owner
from roscoe.engine.protocols import RunState
from roscoe.engine.streams import OutputStream
from roscoe.engine.wire import WireError, quoted


class RunCalls(EngineBase):
    """Mixed into Engine."""

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
        runtime: str | None = None,
    ) -> str:
        """Create (not start) a locked-down run container; return its id.

        `runtime` asks for an OCI runtime by name (HostConfig.Runtime: Docker honours it and
        refuses a name it does not know, which raises IsolationError (5); Podman ignores it,
        so check `run_runtime()` before starting).
        """
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
        if runtime:
            host_config["Runtime"] = runtime
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
        if network == "none":
            # Docker then gives the container a network namespace of its own (only a loopback
            # device, as with NetworkMode none) without asking its network controller for a
            # sandbox: the same isolation, and the start takes half as long (~110 ms less).
            # It also writes no /etc/hosts: a script's run gets roscoe's (runs/plan.py,
            # LOCAL_HOSTS), on either engine. Podman ignores the field.
            body["NetworkDisabled"] = True
        try:
            created = self._wire.call(
                "POST", "/containers/create", params={"name": name}, body=body
            )
        except (WireError, OSError) as exc:
            if runtime and unknown_runtime(exc):
                raise unknown_runtime_error(self.kind, runtime, exc) from exc
            if missing(exc):  # the container does not exist yet: only the image can be missing
                raise image_missing(image, self.kind) from exc
            raise run_failed("could not create the run container", exc) from exc
        return str(created["Id"])

    def run_attach(self, container_id: str) -> OutputStream:
        """Attach to stdout and stderr BEFORE start, so not one byte of output is missed."""
        try:
            raw = self._wire.hijack(
                f"/containers/{quoted(container_id)}/attach",
                params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0},
            )
        except (WireError, OSError) as exc:
            raise run_failed("could not attach to the run container", exc) from exc
        return OutputStream(raw)

    def run_start(self, container_id: str) -> None:
        try:
            self._wire.call("POST", f"/containers/{quoted(container_id)}/start")
        except (WireError, OSError) as exc:
            raise run_failed("could not start the run container", exc) from exc

    def run_wait(self, container_id: str, timeout: float | None = None) -> int:
        """Block until the container exits; its exit code."""
        try:
            result = self._wire.call(
                "POST",
                f"/containers/{quoted(container_id)}/wait",
                timeout=timeout,
                forever=timeout is None,
            )
        except (WireError, OSError) as exc:
            raise run_failed("lost track of the run container", exc) from exc
        return int((result or {}).get("StatusCode", -1))

    def run_kill(self, container_id: str, signal: str | None = None) -> None:
        """SIGKILL (or `signal`) the container's first process; nothing to do when it has
        already stopped or gone."""
        try:
            self._wire.call(
                "POST",
                f"/containers/{quoted(container_id)}/kill",
                params={"signal": signal} if signal else None,
            )
        except (WireError, OSError) as exc:
            if isinstance(exc, WireError) and not_running(exc):
                return
            raise run_failed("could not kill the run container", exc) from exc

    def run_state(self, container_id: str) -> RunState | None:
        """What a finished run needs from inspect; None when the container is gone."""
        try:
            found = self._wire.call("GET", f"/containers/{quoted(container_id)}/json")
        except (WireError, OSError) as exc:
            if missing(exc):
                return None
            raise run_failed("could not inspect the run container", exc) from exc
        state = found.get("State") or {}
        code = state.get("ExitCode")
        return RunState(
            running=bool(state.get("Running")) or state.get("Status") == "running",
            exit_code=int(code) if code is not None else None,
            oom_killed=bool(state.get("OOMKilled")),
            image_id=str(found["Image"]) if found.get("Image") else None,
            error=str(state.get("Error") or "") or None,
        )

    def run_remove(self, container_id: str) -> None:
        try:
            self._wire.call(
                "DELETE", f"/containers/{quoted(container_id)}", params={"force": 1, "v": 1}
            )
        except (WireError, OSError) as exc:
            if going_anyway(exc):
                return
            raise run_failed("could not remove the run container", exc) from exc

    def run_runtime(self, container_id: str) -> str | None:
        """The OCI runtime the container was created with, as the engine records it: Docker's
        HostConfig.Runtime, Podman's OCIRuntime (its compat inspect always says "oci")."""
        try:
            if self.kind == "podman":
                found = self._wire.call("GET", f"/libpod/containers/{quoted(container_id)}/json")
                name = found.get("OCIRuntime")
            else:
                found = self._wire.call("GET", f"/containers/{quoted(container_id)}/json")
                name = (found.get("HostConfig") or {}).get("Runtime")
        except (WireError, OSError) as exc:
            raise run_failed("could not inspect the run container", exc) from exc
        return str(name) if name else None

    def podman_rootless(self) -> bool:
        """True for a rootless Podman (runs then need the keep-id user namespace).

        A local socket owned by root belongs to a rootful service (a rootless one runs as
        its user, and so does its socket): no need to ask. Otherwise Podman's own API says
        (its compat /info does not), once (`facts`).
        """
        if self.kind != "podman":
            return False
        socket_path = self.endpoint.socket_path
        if socket_path is not None and socket_owner(socket_path) == 0:
            return False
        return bool(self.facts().rootless)
