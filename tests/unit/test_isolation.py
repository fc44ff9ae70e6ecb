"""Isolation (runs.isolation) against fake engines: where a gVisor run's container is created,
what is refused before any container exists, and the runtime read back before start.

Real gVisor on Docker and Podman: tests/integration/test_run_isolation.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_run_execute import FakeEngine

from roscoe.config import paths
from roscoe.config.settings import Settings
from roscoe.engine.detect import Endpoint
from roscoe.engine.facts import EngineFacts, FactsCache, docker_facts, podman_facts
from roscoe.errors import EngineError, ExitCode, IsolationError, UsageError
from roscoe.runs.execute import execute
from roscoe.runs.isolation import GVISOR_HOST_SETTING, place
from roscoe.runs.spec import RunSpec
from roscoe.runs.workspace import Workspace

PODMAN_GVISOR = "unix:///run/podman/podman-gvisor.sock"


class Engine(FakeEngine):
    """FakeEngine with what isolation reads: facts, the runtime a container got, close()."""

    def __init__(
        self,
        kind: str = "docker",
        facts: EngineFacts | None = None,
        runtime_created: str | None = None,
        rootless: bool = False,
        url: str = "unix:///run/engine.sock",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self._facts = facts or EngineFacts(default_runtime="runc", runtimes=("runc",))
        self.runtime_created = runtime_created
        self.rootless = rootless
        self.endpoint = Endpoint(url, "test")
        self.closed = False

    def facts(self) -> EngineFacts:
        self.calls.append("facts")
        return self._facts

    def podman_rootless(self) -> bool:
        return self.kind == "podman" and self.rootless

    def run_create(self, **kwargs: Any) -> str:
        self._call("create")
        self.created = kwargs
        if kwargs.get("runtime") and self.kind == "docker" and self.runtime_created is None:
            raise IsolationError("docker has no runtime 'runsc': gVisor is not set up there")
        return "cid-1"

    def run_runtime(self, container_id: str) -> str | None:
        self.calls.append("runtime")
        if self.kind == "docker":
            return self.created.get("runtime") or "runc"
        return self.runtime_created or "runc"

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "projects" / "case-a").mkdir(parents=True)
    (root / "Tools").mkdir()
    (root / "Tools" / "tool.py").write_text("print('hi')\n")
    return Workspace(root.resolve())


def no_run_folder() -> bool:
    return not paths.runs_dir().exists() or not any(paths.runs_dir().iterdir())


def _spec(**extra: Any) -> RunSpec:
    fields: dict[str, Any] = {"case": "case-a", "script": "tool.py", "args": [], "image": "img"}
    return RunSpec(**{**fields, **extra})


class Connector:
    """Stands in for the factory at the edges (engine.connect_url)."""

    def __init__(self, engine: Engine | None = None, error: EngineError | None = None):
        self.engine = engine
        self.error = error
        self.asked: list[tuple[str, str]] = []

    def __call__(self, url: str, source: str) -> Engine:
        self.asked.append((url, source))
        if self.error is not None:
            raise self.error
        assert self.engine is not None
        return self.engine


def test_runc_asks_for_no_runtime_and_reads_nothing_back(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = Engine()
    record = execute(engine, ws, _spec())  # type: ignore[arg-type]
    assert engine.created["runtime"] is None
    assert "runtime" not in engine.calls and "facts" not in engine.calls
    assert record.isolation == "runc" and record.status == "succeeded"


def test_gvisor_on_docker_asks_for_runsc_and_checks_it_before_start(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = Engine("docker", runtime_created="runsc")
    record = execute(engine, ws, _spec(isolation="gvisor"))  # type: ignore[arg-type]
    assert engine.created["runtime"] == "runsc"
    assert engine.calls.index("runtime") < engine.calls.index("start")
    assert (record.isolation, record.status) == ("gvisor", "succeeded")


def test_gvisor_on_a_docker_without_runsc_is_exit_5_and_leaves_no_record(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = Engine("docker")  # create answers "unknown runtime"
    with pytest.raises(IsolationError) as caught:
        execute(engine, ws, _spec(isolation="gvisor"))  # type: ignore[arg-type]
    assert caught.value.exit_code == ExitCode.ISOLATION == 5
    assert "start" not in engine.calls
    assert no_run_folder()


def test_gvisor_on_podman_without_a_gvisor_service_is_refused_before_any_container(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = Engine("podman")
    with pytest.raises(IsolationError) as caught:
        execute(engine, ws, _spec(isolation="gvisor"))  # type: ignore[arg-type]
    assert "default runtime is 'runc'" in caught.value.message
    assert "ROSCOE_GVISOR_HOST" in (caught.value.hint or "")
    assert "podman --runtime runsc" in (caught.value.hint or "")
    assert "create" not in engine.calls
    assert no_run_folder()


def test_a_podman_whose_default_runtime_is_runsc_needs_no_gvisor_host(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = Engine("podman", EngineFacts(default_runtime="runsc"), runtime_created="runsc")
    record = execute(engine, ws, _spec(isolation="gvisor"))  # type: ignore[arg-type]
    assert engine.created["runtime"] is None  # Podman ignores it: never sent
    assert record.status == "succeeded"


def test_gvisor_host_is_where_the_run_goes_and_is_closed_after(
    ws: Workspace, isolated_dirs: Path
) -> None:
    main = Engine("podman")
    gvisor = Engine("podman", runtime_created="runsc", url=PODMAN_GVISOR)
    connect = Connector(gvisor)
    spec = _spec(isolation="gvisor", gvisor_host=PODMAN_GVISOR)
    record = execute(main, ws, spec, connect=connect)  # type: ignore[arg-type]
    assert connect.asked == [(PODMAN_GVISOR, GVISOR_HOST_SETTING)]
    assert main.calls == []  # nothing on the usual engine
    assert gvisor.calls[:3] == ["create", "runtime", "attach"]
    assert "facts" not in gvisor.calls  # a run does not pay Podman's slow /info
    assert gvisor.closed and record.status == "succeeded"


def test_a_container_not_under_gvisor_is_removed_unstarted(
    ws: Workspace, isolated_dirs: Path
) -> None:
    gvisor = Engine("podman", runtime_created="runc", url=PODMAN_GVISOR)
    spec = _spec(isolation="gvisor", gvisor_host=PODMAN_GVISOR)
    with pytest.raises(IsolationError) as caught:
        execute(Engine("podman"), ws, spec, connect=Connector(gvisor))  # type: ignore[arg-type]
    assert "under 'runc', not gVisor's runsc: nothing ran" in caught.value.message
    assert gvisor.calls == ["create", "runtime", "remove"]
    assert gvisor.closed
    assert no_run_folder()


def test_an_unreachable_gvisor_host_is_exit_5(ws: Workspace, isolated_dirs: Path) -> None:
    connect = Connector(error=EngineError("nothing answers", hint="start it"))
    spec = _spec(isolation="gvisor", gvisor_host=PODMAN_GVISOR)
    with pytest.raises(IsolationError) as caught:
        execute(Engine("podman"), ws, spec, connect=connect)  # type: ignore[arg-type]
    assert caught.value.exit_code == 5
    assert "nothing answers" in caught.value.message


def test_gvisor_under_rootless_podman_without_delegated_cgroups_is_refused(
    ws: Workspace, isolated_dirs: Path
) -> None:
    facts = EngineFacts(rootless=True, cgroup_version="v1", cgroup_controllers=())
    engine = Engine("podman", facts, rootless=True)
    with pytest.raises(IsolationError) as caught:
        execute(engine, ws, _spec(isolation="gvisor"))  # type: ignore[arg-type]
    assert "rootless Podman" in caught.value.message and "memory, pids" in caught.value.message
    assert "create" not in engine.calls


def test_bad_input_is_still_refused_first(ws: Workspace, isolated_dirs: Path) -> None:
    engine = Engine("podman")
    with pytest.raises(UsageError):
        execute(engine, ws, _spec(isolation="gvisor", case="nope"))  # type: ignore[arg-type]
    assert engine.calls == []


def test_thorough_checks_ask_the_engine_itself() -> None:
    docker = Engine("docker", EngineFacts(runtimes=("runc",)))
    with pytest.raises(IsolationError, match="no runtime 'runsc'"):
        place(docker, "gvisor", None, thorough=True)  # type: ignore[arg-type]
    ok = Engine("docker", EngineFacts(runtimes=("runc", "runsc")))
    assert place(ok, "gvisor", None, thorough=True).runtime == "runsc"  # type: ignore[arg-type]
    wrong = Engine("podman", url=PODMAN_GVISOR)  # gvisor_host names a runc service
    with pytest.raises(IsolationError, match=r"run\.gvisor_host"):
        place(Engine("podman"), "gvisor", PODMAN_GVISOR, Connector(wrong), thorough=True)  # type: ignore[arg-type]
    assert wrong.closed


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ROSCOE_ISOLATION", "kata", "'kata' is not one of runc, gvisor"),
        ("ROSCOE_GVISOR_HOST", "/run/podman/podman-gvisor.sock", "not an engine endpoint"),
    ],
)
def test_isolation_settings_are_checked(name: str, value: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        Settings(env={name: value}).check()


# -- engine facts ------------------------------------------------------------------------------
PODMAN_INFO = {
    "host": {
        "security": {"rootless": True},
        "cgroupVersion": "v1",
        "cgroupControllers": [],
        "ociRuntime": {"name": "runc"},
    }
}


def test_facts_from_podman_and_docker() -> None:
    found = podman_facts(PODMAN_INFO)
    assert (found.rootless, found.cgroup_version, found.default_runtime) == (True, "v1", "runc")
    assert found.missing_controllers(cpus=True) == ["memory", "pids", "cpu"]
    docker = docker_facts(
        {
            "SecurityOptions": ["name=seccomp,profile=default"],
            "CgroupVersion": "1",
            "DefaultRuntime": "runc",
            "Runtimes": {"runc": {}, "runsc": {}},
        }
    )
    assert (docker.rootless, docker.cgroup_version, docker.runtimes) == (
        False,
        "v1",
        ("runc", "runsc"),
    )
    assert docker.missing_controllers(cpus=True) == []  # Docker does not say: not refused


def test_the_facts_cache_is_keyed_by_the_socket_itself(tmp_path: Path) -> None:
    import socket

    where = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(where))
    cache = FactsCache(tmp_path / "facts.json")
    facts = podman_facts(PODMAN_INFO)
    cache.put(str(where), facts)
    assert cache.get(str(where)) == facts
    assert oct((tmp_path / "facts.json").stat().st_mode & 0o777) == "0o600"
    server.close()
    where.unlink()  # the engine service restarts: a new socket
    again = socket.socket(socket.AF_UNIX)
    again.bind(str(where))
    try:
        assert cache.get(str(where)) is None
    finally:
        again.close()


def test_the_facts_cache_never_makes_its_folder(tmp_path: Path) -> None:
    cache = FactsCache(tmp_path / "missing" / "facts.json")
    cache.put(str(tmp_path), EngineFacts(rootless=True))
    assert not (tmp_path / "missing").exists()
