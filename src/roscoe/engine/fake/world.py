"""What the fake engine holds: images, containers and what each container "does".

`FakeState` keeps containers as the engine API shows them (inspect data, in
`containers_by_id`) beside their runtime side (`Life`: started, ended, output), logs every
call and raises injected failures. `FakeEngine` (engine.py) makes the protocol calls on it.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from roscoe.engine.detect import Endpoint
from roscoe.engine.protocols import EngineFacts, EngineInfo

# The calls that change what the engine holds (the rest only read).
CHANGES = frozenset(
    {
        "run_create",
        "run_start",
        "run_kill",
        "run_remove",
        "create_container",
        "start_container",
        "stop_container",
        "remove_container",
        "pull_stream",
    }
)


@dataclass
class Program:
    """What a container does once started: writes `output`, then exits with `exit_code`,
    or with `until_stopped` runs until it is stopped, killed or removed (a server, a hang)."""

    output: list[tuple[str, bytes]] = field(default_factory=list)  # ("stdout"|"stderr", bytes)
    exit_code: int = 0
    until_stopped: bool = False
    oom_killed: bool = False  # as the engine reports it (Podman never says True)
    # Signals its first process handles by exiting with the code given (run_kill(signal=));
    # any other signal kills it (137).
    signals: dict[str, int] = field(default_factory=dict)
    # After it ends, run_state still says "running" this many times (Podman's lag), unless
    # the run was waited for.
    slow_exit_reports: int = 0


@dataclass
class Published:
    """An image in the fake's registry: the pull stream's events, and the image they leave.

    With `image=None` the stream ends without the image there; `fails_with` is raised after
    the events; `delay` seconds pass before each event (a slow or silent engine).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    image: dict[str, Any] | None = field(default_factory=dict)
    delay: float = 0.0
    fails_with: BaseException | None = None


class Call(NamedTuple):
    method: str
    target: str | None  # the container, image or reference the call was about


@dataclass
class Life:
    """The runtime side of one container (its inspect data lives in `containers_by_id`)."""

    program: Program
    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    ran: bool = False  # started at least once (removal also ends the wait for a start)
    waited: bool = False
    lag: int = 0
    output: list[tuple[str, bytes]] = field(default_factory=list)


def normal_ref(ref: str) -> str:
    """An image reference as engines store it: no tag means `latest`."""
    if "@" in ref:
        return ref
    _, colon, tag = ref.rpartition(":")
    return ref if colon and "/" not in tag else f"{ref}:latest"


class FakeState:
    """The fake engine's state and set-up; every public attribute is test set-up."""

    def __init__(self, kind: str = "docker", *, rootless: bool | None = None) -> None:
        self.info = EngineInfo(kind=kind, version="1.0", api_version="1.41", os="linux")
        self.endpoint = Endpoint("unix:///nonexistent/fake-engine.sock", "fake engine")
        self.rootless_answer = rootless
        self.cpus: int | None = 2  # what cpu_count() says
        # What facts() says; runtimes: Docker's registered ones (add "runsc" for gVisor);
        # default_runtime: what Podman's containers run under, whatever a client asks for.
        self.facts_answer = EngineFacts(
            rootless=rootless, default_runtime="runc", runtimes=("runc",)
        )
        self.images: dict[str, dict[str, Any]] = {}  # by reference, "name:tag"
        self.containers_by_id: dict[str, dict[str, Any]] = {}  # inspect data
        self.registry: dict[str, Published] = {}  # what pull_stream can fetch, by reference
        self.programs: dict[str, Program] = {}  # by image reference
        self.default_program = Program()
        self.calls: list[Call] = []
        self.run_requests: list[dict[str, Any]] = []  # run_create's arguments, in order
        self.log_requests: list[dict[str, Any]] = []  # stream_logs' arguments, in order
        self.label_queries: list[dict[str, str]] = []  # containers()' labels, in order
        self.pull_requests: list[tuple[str, str]] = []  # pull_stream's (repository, tag)
        self.attached: list[FakeOutput] = []  # the streams run_attach handed out, in order
        self.kill_signals: list[str | None] = []  # run_kill's signals (None: SIGKILL), in order
        self.closed = False
        self._failures: dict[tuple[str, str | None], BaseException] = {}
        self._lives: dict[str, Life] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- set-up ---------------------------------------------------------------------------
    def add_image(
        self,
        ref: str,
        version: str | None = "0.1.0",
        *,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        """Put an image here (`data`: its inspect data; else made up with this version label)."""
        image = dict(data) if data is not None else {}
        image.setdefault("Id", f"sha256:{self._new_id()}")
        image.setdefault("RepoTags", [normal_ref(ref)])
        name = ref.partition("@")[0]
        head, colon, tag = name.rpartition(":")
        repository = head if colon and "/" not in tag else name
        image.setdefault("RepoDigests", [f"{repository}@sha256:{'d' * 64}"])
        labels = {"org.opencontainers.image.version": version} if version else {}
        image.setdefault("Config", {"Labels": labels})
        self.images[normal_ref(ref)] = image
        return str(image["Id"])

    def add_container(
        self,
        name: str,
        *,
        image: str = "roscoe-runner:dev",
        labels: Mapping[str, str] | None = None,
        status: str = "running",
        exit_code: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Put a container here in the given state, as if someone had made it earlier."""
        container_id = self._new_container(
            name, image, labels or {}, [f"{k}={v}" for k, v in (env or {}).items()], {}
        )
        life = self._lives[container_id]
        state = self.containers_by_id[container_id]["State"]
        if status != "created":
            life.started.set()
            state["StartedAt"] = "2024-05-01T12:00:00.123456789Z"
        if status not in ("created", "running", "restarting", "paused"):
            life.ended.set()
        running = status in ("running", "restarting", "paused")
        state.update(Status=status, Running=running, ExitCode=exit_code)
        return container_id

    def end(self, exit_code: int = 0, ref: str | None = None) -> None:
        """Running containers (or the one named) end by themselves with this code, as if
        their program had: for programs that run until stopped."""
        with self._lock:
            running = [ref] if ref else list(self.containers_by_id)
            for container_id in running:
                found = self._find(container_id)
                if found is not None and self.containers_by_id[found]["State"]["Running"]:
                    self._end(found, exit_code)

    def fail(self, method: str, error: BaseException, target: str | None = None) -> None:
        """Make every call of `method` (on `target` only, if given) raise `error`."""
        self._failures[(method, target)] = error

    def methods(self) -> list[str]:
        """The methods called so far, in order."""
        return [call.method for call in self.calls]

    def changes(self) -> list[Call]:
        """The calls so far that changed what the engine holds."""
        return [call for call in self.calls if call.method in CHANGES]

    # -- the machinery --------------------------------------------------------------------
    def _call(self, method: str, target: str | None) -> None:
        with self._lock:
            self.calls.append(Call(method, target))
        error = self._failures.get((method, target)) or self._failures.get((method, None))
        if error is not None:
            raise error

    def _image(self, ref: str) -> dict[str, Any] | None:
        image = self.images.get(normal_ref(ref))
        if image is not None:
            return image
        return next((i for i in self.images.values() if i.get("Id") == ref), None)

    def _find(self, ref: str) -> str | None:
        """By ID, by name, or by a unique ID prefix, as engines do."""
        with self._lock:
            if ref in self.containers_by_id:
                return ref
            for container_id, data in self.containers_by_id.items():
                if data["Name"] == f"/{ref.lstrip('/')}":
                    return container_id
            matches = [i for i in self.containers_by_id if ref and i.startswith(ref)]
            return matches[0] if len(matches) == 1 else None

    def _new_id(self) -> str:
        """64 hex digits that differ early, as engines' IDs do (a short prefix finds one)."""
        return hashlib.sha256(f"fake-{id(self)}-{next(self._ids)}".encode()).hexdigest()

    def _new_container(
        self,
        name: str,
        image: str,
        labels: Mapping[str, str],
        env: list[str],
        host: dict[str, Any],
    ) -> str:
        with self._lock:
            container_id = self._new_id()
            found = self._image(image)
            self.containers_by_id[container_id] = {
                "Id": container_id,
                "Name": f"/{name or container_id[:12]}",
                "Image": (found or {}).get("Id", "sha256:" + "0" * 64),
                "RestartCount": 0,
                "Config": {"Image": image, "Labels": dict(labels), "Env": env, "Tty": False},
                "State": {
                    "Status": "created",
                    "Running": False,
                    "ExitCode": 0,
                    "OOMKilled": False,
                    "Error": "",
                    "StartedAt": "0001-01-01T00:00:00Z",
                },
                "HostConfig": host,
            }
            program = self.programs.get(normal_ref(image), self.default_program)
            self._lives[container_id] = Life(program, lag=program.slow_exit_reports)
        return container_id

    def _start(self, container_id: str) -> None:
        with self._lock:
            life = self._lives[container_id]
            state = self.containers_by_id[container_id]["State"]
            if state["Running"]:
                return
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
            state.update(Status="running", Running=True, StartedAt=now)
            life.output.extend(life.program.output)
            life.ran = True
            life.started.set()
            if not life.program.until_stopped:
                state["OOMKilled"] = life.program.oom_killed
                self._end(container_id, life.program.exit_code)

    def _end(self, container_id: str, exit_code: int) -> None:
        with self._lock:
            state = self.containers_by_id[container_id]["State"]
            if state["Running"]:
                state.update(Status="exited", Running=False, ExitCode=exit_code)
            self._lives[container_id].ended.set()

    def _forget(self, container_id: str) -> None:
        with self._lock:
            self.containers_by_id.pop(container_id, None)
            life = self._lives.pop(container_id)
        life.started.set()  # an attached stream ends with its container
        life.ended.set()

    def _started_at(self, container_id: str) -> float:
        text = str(self.containers_by_id[container_id]["State"]["StartedAt"])
        try:
            started = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return 0.0
        return started.replace(tzinfo=timezone.utc).timestamp()


class FakeOutput:
    """A run's attach stream: nothing until the container starts, then its output; it ends
    when the container does (or is removed)."""

    def __init__(self, life: Life) -> None:
        self._life = life
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while not self._life.started.wait(0.05):
            if self.closed.is_set():
                return
        if not self._life.ran:  # removed before it ever started
            return
        yield from self._life.program.output
        while not self._life.ended.wait(0.05):
            if self.closed.is_set():
                return

    def close(self) -> None:
        self.closed.set()
