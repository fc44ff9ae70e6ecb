"""The engine seam: what each part of roscoe asks of a container engine, as Protocols.

One Protocol per consumer, so each names only the calls it makes:

  ImageEngine        images/ensure and images/pull (is it there, pull it)
  RunEngine          a one-shot run, its image pulled when absent: runs/start, runs/execute,
                     and their callers (the execution service's backend, the MCP server)
  GcEngine           runs/gc (sweeping what a killed roscoe left behind)
  RunnerEngine       runner/* (the long-lived runner container, and the runs of one that
                     is gone), images/version
  DiagnosticsEngine  diagnostics/* (`roscoe version`, `roscoe doctor`)
  ContainerEngine    all of them: what `connect()` gives and the CLI hands down

Two classes implement every one: `engine.Engine` (Docker and Podman through their API) and
`engine.fake.FakeEngine` (in memory, for unit tests); tests/integration/test_engine_contract.py
holds them to the same behaviour. A new backend (Kubernetes, say) implements these and
nothing else: no core module knows which class it was handed.

Container and image data are the engine API's inspect and list shapes (`Id`, `Name`,
`State`, `Config.Labels` ...), which every backend gives as Docker's API does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from roscoe.engine.detect import Endpoint


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself."""

    kind: str  # "docker" or "podman", from the version call, never from the socket path
    version: str
    api_version: str  # negotiated: what roscoe's requests use
    os: str = ""


# The cgroup controllers a run's limits need: memory (--memory) and pids (the process limit),
# and cpu when a run has a CPU limit.
LIMIT_CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class EngineFacts:
    """What an engine is like beyond its name and version (engine/facts.py reads them);
    None where the engine did not say."""

    rootless: bool | None = None
    cgroup_version: str | None = None  # "v1" or "v2"
    # The controllers a container of this engine may be limited by (Podman says; for a
    # rootless Podman these are the ones delegated to the user). None: not said (Docker).
    cgroup_controllers: tuple[str, ...] | None = None
    default_runtime: str | None = None
    runtimes: tuple[str, ...] = ()

    def missing_controllers(self, cpus: bool) -> list[str]:
        """The controllers a run's limits need that this engine's containers cannot use."""
        if self.cgroup_controllers is None:
            return []
        wanted = [*LIMIT_CONTROLLERS, *(["cpu"] if cpus else [])]
        return [name for name in wanted if name not in self.cgroup_controllers]


@dataclass(frozen=True)
class RunState:
    """What a finished (or finishing) run needs to know of its container."""

    running: bool
    exit_code: int | None
    oom_killed: bool  # as the engine says; Podman says False even for an OOM kill
    image_id: str | None
    error: str | None = None  # the engine's own error for the container, if any


@dataclass(frozen=True)
class ContainerSpec:
    """A long-lived container (the runner's), as `RunnerEngine.create_container` takes it: in
    the engine's own terms, not a client library's. The defaults make a plain container with
    no network, no restart policy and the image's command and user (as the tests make them)."""

    image: str
    name: str = ""
    command: Sequence[str] = ()  # empty: the image's
    user: str = ""  # "uid:gid"; empty: the image's
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    binds: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # host: (inside, mode)
    network: str = "none"
    restart_policy: str = "no"
    log_driver: str = ""  # empty: the engine's
    log_options: Mapping[str, str] = field(default_factory=dict)
    group_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    security_opt: Sequence[str] = ()
    read_only: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)  # path: mount options
    userns: str = ""  # e.g. Podman's "keep-id"; empty: the engine's


class RunOutput(Protocol):
    """A run container's output as (stream name, bytes) chunks in arrival order:
    "stdout" or "stderr". Iterating ends when the container closes its output."""

    def __iter__(self) -> Iterator[tuple[str, bytes]]: ...

    def close(self) -> None: ...


class ImageEngine(Protocol):
    """Is an image present, and pulling one with the engine's progress events."""

    @property
    def kind(self) -> str: ...

    def image_inspect(self, ref: str) -> dict[str, Any] | None: ...

    def pull_stream(self, repository: str, tag: str) -> Iterator[dict[str, Any]]: ...


class RunEngine(ImageEngine, Protocol):
    """A one-shot run: create locked down, attach, start, wait or kill, inspect, remove; and
    its image, pulled when it is absent (runs/start).

    Failures once the container exists raise EngineError with exit code 125; a missing
    image at create raises ImageError (4); a runtime the engine does not know, IsolationError
    (5).
    """

    @property
    def endpoint(self) -> Endpoint: ...

    def podman_rootless(self) -> bool: ...

    def facts(self) -> EngineFacts:
        """Rootless or not, cgroups, runtimes: asked once, then kept (empty when not said)."""
        ...

    def cpu_count(self) -> int | None:
        """How many CPUs the engine has (its view); None when it does not say."""
        ...

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
    ) -> str: ...

    def run_runtime(self, container_id: str) -> str | None:
        """The OCI runtime the container was created with, as the engine records it."""
        ...

    def run_attach(self, container_id: str) -> RunOutput: ...

    def run_start(self, container_id: str) -> None: ...

    def run_wait(self, container_id: str, timeout: float | None = None) -> int: ...

    def run_kill(self, container_id: str, signal: str | None = None) -> None:
        """SIGKILL (or `signal`, e.g. "USR1") to the container's first process."""
        ...

    def run_state(self, container_id: str) -> RunState | None: ...

    def run_remove(self, container_id: str) -> None: ...

    def close(self) -> None: ...


class GcEngine(Protocol):
    """Finding containers by label, reading one, removing it."""

    def containers(self, labels: Mapping[str, str], all: bool = True) -> list[dict[str, Any]]: ...

    def inspect_container(self, ref: str) -> dict[str, Any] | None: ...

    def remove_container(self, ref: str, force: bool = True) -> bool: ...


class RunnerEngine(ImageEngine, Protocol):
    """The long-lived runner container: its image, create, start, stop, remove, logs; and
    sweeping the runs a runner that is no more left behind (`server start`, runs/gc)."""

    @property
    def info(self) -> EngineInfo: ...

    @property
    def endpoint(self) -> Endpoint: ...

    def cpu_count(self) -> int | None: ...

    def podman_rootless(self) -> bool:
        """A rootless Podman: the runner gets the keep-id user namespace, as runs do."""
        ...

    def containers(self, labels: Mapping[str, str], all: bool = True) -> list[dict[str, Any]]:
        """As GcEngine's: `server start` sweeps the runs of a runner that is no more."""
        ...

    def inspect_container(self, ref: str) -> dict[str, Any] | None: ...

    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; its id."""
        ...

    def start_container(self, ref: str) -> None: ...

    def stop_container(self, ref: str, timeout: float) -> bool: ...

    def remove_container(self, ref: str, force: bool = True) -> bool: ...

    def log_tail(self, ref: str, lines: int) -> bytes: ...

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
        """(stream, bytes) pieces, 1 stdout and 2 stderr; followed, it ends when the container
        does (asked every `read_timeout` seconds of silence, of `still_running` if given)."""
        ...


class DiagnosticsEngine(RunnerEngine, RunEngine, Protocol):
    """What `roscoe doctor` looks at: the engine itself, the image, the runner, and whether
    gVisor can be had (runs/isolation, which places runs)."""

    def rootless(self) -> bool | None: ...


class ContainerEngine(DiagnosticsEngine, GcEngine, Protocol):
    """Every call roscoe makes: what `connect()` returns and the CLI hands down."""
