"""`FakeEngine`: every protocol of the engine seam, in memory, for unit tests.

The one test double of the engine. It keeps images and containers as the engine API shows
them (inspect and list shapes), runs no process: what a started container "does" is a
`Program` (its output, its exit code, whether it runs until stopped). Failures are injected
per call (`fail`), and every call is logged (`calls`). It raises the errors the real engine
raises, built by the same mapper (errors.py), and tests/integration/test_engine_contract.py
runs the same checks against it and against Docker and Podman, so it cannot drift from them.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from roscoe.engine.errors import (
    call_failed,
    image_missing,
    pull_failure,
    run_failed,
    unknown_runtime_error,
)
from roscoe.engine.fake.world import FakeOutput, FakeState
from roscoe.engine.protocols import ContainerSpec, EngineFacts, RunState
from roscoe.engine.wire import WireError

if TYPE_CHECKING:
    from roscoe.engine.protocols import ContainerEngine

_STREAM_NUMBERS = {"stdout": 1, "stderr": 2}


class FakeEngine(FakeState):
    """An engine in memory: see the module docstring, and FakeState for the set-up."""

    # -- identity -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.info.kind

    def rootless(self) -> bool | None:
        self._call("rootless", None)
        return self.rootless_answer

    def podman_rootless(self) -> bool:
        self._call("podman_rootless", None)
        return self.kind == "podman" and bool(self.rootless_answer)

    def cpu_count(self) -> int | None:
        self._call("cpu_count", None)
        return self.cpus

    def facts(self) -> EngineFacts:
        self._call("facts", None)
        return self.facts_answer

    def close(self) -> None:
        self.closed = True

    # -- images ---------------------------------------------------------------------------
    def image_inspect(self, ref: str) -> dict[str, Any] | None:
        self._call("image_inspect", ref)
        image = self._image(ref)
        return copy.deepcopy(image) if image is not None else None

    def pull_stream(self, repository: str, tag: str) -> Iterator[dict[str, Any]]:
        ref = f"{repository}@{tag}" if ":" in tag else f"{repository}:{tag}"
        self._call("pull_stream", ref)
        self.pull_requests.append((repository, tag))
        published = self.registry.get(ref)
        if published is None:  # Docker answers at once; Podman says it inside the stream
            raise pull_failure(ref, f"manifest for {ref} not found: manifest unknown")

        def events() -> Iterator[dict[str, Any]]:
            for event in published.events:
                if published.delay:
                    time.sleep(published.delay)  # an engine that takes its time
                yield dict(event)
            if published.fails_with is not None:
                raise published.fails_with
            if published.image is not None:
                self.add_image(ref, None, data=published.image)

        return events()

    # -- containers -----------------------------------------------------------------------
    def containers(self, labels: Mapping[str, str], all: bool = True) -> list[dict[str, Any]]:
        self._call("containers", None)
        self.label_queries.append(dict(labels))
        found = []
        with self._lock:
            for data in self.containers_by_id.values():
                have = data["Config"]["Labels"]
                state = data["State"]
                if any(have.get(k) != v for k, v in labels.items()):
                    continue
                if not all and not state["Running"]:
                    continue
                found.append(
                    {
                        "Id": data["Id"],
                        "Names": [data["Name"]],
                        "Image": data["Config"]["Image"],
                        "ImageID": data["Image"],
                        "State": state["Status"],
                        "Labels": dict(have),
                    }
                )
        return found

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        self._call("inspect_container", ref)
        container_id = self._find(ref)
        if container_id is None:
            return None
        return copy.deepcopy(self.containers_by_id[container_id])

    def remove_container(self, ref: str, force: bool = True) -> bool:
        self._call("remove_container", ref)
        container_id = self._find(ref)
        if container_id is None:
            return False
        if not force and self.containers_by_id[container_id]["State"]["Running"]:
            error = WireError(409, f"cannot remove container {ref}: container is running")
            raise call_failed(self.kind, f"could not remove container {ref}", error)
        self._forget(container_id)
        return True

    # -- the runner container -------------------------------------------------------------
    def create_container(self, spec: ContainerSpec) -> str:
        self._call("create_container", spec.name)
        if self._image(spec.image) is None:
            raise image_missing(spec.image, self.kind)
        if spec.name and self._find(spec.name) is not None:
            error = WireError(409, f'the container name "/{spec.name}" is already in use')
            raise call_failed(self.kind, f"could not create container {spec.name}", error)
        host: dict[str, Any] = {"NetworkMode": spec.network, "UsernsMode": spec.userns}
        host["Binds"] = [
            f"{source}:{inside}:{mode}" for source, (inside, mode) in spec.binds.items()
        ]
        env = [f"{k}={v}" for k, v in spec.environment.items()]
        return self._new_container(spec.name, spec.image, spec.labels, env, host)

    def start_container(self, ref: str) -> None:
        self._call("start_container", ref)
        container_id = self._find(ref)
        if container_id is None:
            error = WireError(404, f"no such container: {ref}")
            raise call_failed(self.kind, f"could not start container {ref}", error)
        self._start(container_id)

    def stop_container(self, ref: str, timeout: float) -> bool:
        self._call("stop_container", ref)
        container_id = self._find(ref)
        if container_id is None:
            return False
        self._end(container_id, exit_code=0)
        return True

    def log_tail(self, ref: str, lines: int) -> bytes:
        self._call("log_tail", ref)
        container_id = self._find(ref)
        if container_id is None:
            return b""
        text = b"".join(data for _, data in self._lives[container_id].output)
        return b"".join(text.splitlines(keepends=True)[-lines:]) if lines else b""

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
        self._call("stream_logs", ref)
        self.log_requests.append(
            {
                "ref": ref,
                "tty": tty,
                "follow": follow,
                "tail": tail,
                "since": since,
                "timestamps": timestamps,
                "read_timeout": read_timeout,
                "still_running": still_running,
            }
        )
        container_id = self._find(ref)
        if container_id is None:
            error = WireError(404, f"no such container: {ref}")
            raise call_failed(self.kind, f"could not read the logs of {ref}", error)
        life = self._lives[container_id]
        lines = [
            (_STREAM_NUMBERS[name], line)
            for name, data in life.output
            for line in data.splitlines(keepends=True)
        ]
        if tail != "all":
            lines = lines[-int(tail) :] if int(tail) else []
        if since is not None and since > self._started_at(container_id):
            lines = []
        if timestamps:
            stamp = self.containers_by_id[container_id]["State"]["StartedAt"].encode()
            lines = [(number, stamp + b" " + line) for number, line in lines]

        def pieces() -> Iterator[tuple[int, bytes]]:
            yield from _joined(lines)
            while follow and not life.ended.wait(read_timeout):
                if still_running is not None and not still_running():
                    return

        return pieces()

    # -- one-shot runs --------------------------------------------------------------------
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
        self._call("run_create", name)
        self.run_requests.append(
            {
                "name": name,
                "image": image,
                "entrypoint": entrypoint,
                "command": command,
                "user": user,
                "workdir": workdir,
                "env": env,
                "labels": labels,
                "binds": binds,
                "network": network,
                "memory_bytes": memory_bytes,
                "cpus": cpus,
                "pids_limit": pids_limit,
                "tmpfs": tmpfs,
                "userns": userns,
                "runtime": runtime,
            }
        )
        if runtime and self.kind == "docker" and runtime not in self.facts_answer.runtimes:
            error = WireError(400, f"Unknown runtime specified {runtime}")
            raise unknown_runtime_error(self.kind, runtime, error)
        if self._image(image) is None:
            raise image_missing(image, self.kind)
        if self._find(name) is not None:
            error = WireError(409, f'the container name "/{name}" is already in use')
            raise run_failed("could not create the run container", error)
        host = {
            "Binds": list(binds),
            "NetworkMode": network,
            "Memory": memory_bytes,
            "MemorySwap": memory_bytes,
            "PidsLimit": pids_limit,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            "Tmpfs": dict(tmpfs),
            # Docker runs a container under the runtime asked for; Podman under its own.
            "Runtime": (runtime if self.kind == "docker" else None)
            or self.facts_answer.default_runtime,
        }
        container_id = self._new_container(
            name, image, labels, [f"{k}={v}" for k, v in env.items()], host
        )
        config = self.containers_by_id[container_id]["Config"]
        config.update(Entrypoint=list(entrypoint), Cmd=list(command), User=user)
        config["WorkingDir"] = workdir
        return container_id

    def run_attach(self, container_id: str) -> FakeOutput:
        self._call("run_attach", container_id)
        if self._find(container_id) is None:
            raise run_failed("could not attach to the run container", WireError(404, "no such"))
        stream = FakeOutput(self._lives[container_id])
        self.attached.append(stream)
        return stream

    def run_start(self, container_id: str) -> None:
        self._call("run_start", container_id)
        if self._find(container_id) is None:
            error = WireError(404, f"no such container: {container_id}")
            raise run_failed("could not start the run container", error)
        self._start(container_id)

    def run_wait(self, container_id: str, timeout: float | None = None) -> int:
        self._call("run_wait", container_id)
        if self._find(container_id) is None:
            error = WireError(404, f"no such container: {container_id}")
            raise run_failed("lost track of the run container", error)
        life = self._lives[container_id]
        life.waited = True
        if not life.ended.wait(timeout):
            raise run_failed("lost track of the run container", TimeoutError("timed out"))
        return int(self.containers_by_id[container_id]["State"]["ExitCode"])

    def run_runtime(self, container_id: str) -> str | None:
        self._call("run_runtime", container_id)
        found = self._find(container_id)
        if found is None:
            raise run_failed("could not inspect the run container", WireError(404, "no such"))
        runtime = self.containers_by_id[found]["HostConfig"].get("Runtime")
        return str(runtime) if runtime else None

    def run_kill(self, container_id: str, signal: str | None = None) -> None:
        self._call("run_kill", container_id)
        self.kill_signals.append(signal)
        found = self._find(container_id)
        if found is not None and self.containers_by_id[found]["State"]["Running"]:
            handled = self._lives[found].program.signals
            self._end(found, exit_code=handled.get(signal or "KILL", 137))

    def run_state(self, container_id: str) -> RunState | None:
        self._call("run_state", container_id)
        found = self._find(container_id)
        if found is None:
            return None
        data = self.containers_by_id[found]
        life = self._lives[found]
        with self._lock:
            lagging = life.lag > 0 and not life.waited and life.ended.is_set()
            if lagging:
                life.lag -= 1
        running = bool(data["State"]["Running"]) or lagging
        return RunState(
            running=running,
            exit_code=0 if running else int(data["State"]["ExitCode"]),
            oom_killed=bool(data["State"]["OOMKilled"]),
            image_id=str(data["Image"]),
            error=None,
        )

    def run_remove(self, container_id: str) -> None:
        self._call("run_remove", container_id)
        found = self._find(container_id)
        if found is not None:
            self._forget(found)


def _joined(lines: list[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """Consecutive lines of one stream as one piece, as the engine's frames decode."""
    for number, group in itertools.groupby(lines, key=lambda item: item[0]):
        yield number, b"".join(line for _, line in group)


if TYPE_CHECKING:
    # mypy holds the fake to every protocol of the seam.
    _conforms: ContainerEngine = FakeEngine()
