"""Isolation (runs.isolation) against fake engines: where a gVisor run's container is created,
what is refused before any container exists, and the runtime read back before start.

Real gVisor on Docker and Podman: tests/integration/test_run_isolation.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roscoe.config import paths
from roscoe.config.settings import Settings
from roscoe.engine import EngineFacts
from roscoe.engine.detect import Endpoint
from roscoe.engine.facts import FactsCache, docker_facts, podman_facts
from roscoe.engine.fake import FakeEngine
from roscoe.errors import EngineError, ExitCode, IsolationError, UsageError
from roscoe.runs.execute import execute
from roscoe.runs.isolation import GVISOR_HOST_SETTING, place
from roscoe.runs.spec import RunSpec
from roscoe.runs.workspace import Workspace

IMAGE = "img"
PODMAN_GVISOR = "unix:///run/podman/podman-gvisor.sock"


def engine_of(
    kind: str = "docker",
    *,
    runtimes: tuple[str, ...] = ("runc",),
    default_runtime: str = "runc",
    rootless: bool = False,
    controllers: tuple[str, ...] | None = None,
    url: str = "unix:///run/engine.sock",
) -> FakeEngine:
    """The fake engine with the image present; Docker knows `runtimes`, Podman runs every
    container under `default_runtime`."""
    engine = FakeEngine(kind, rootless=rootless)
    engine.add_image(IMAGE)
    engine.endpoint = Endpoint(url, "test")
    engine.facts_answer = EngineFacts(
        rootless=rootless,
        cgroup_controllers=controllers,
        default_runtime=default_runtime,
        runtimes=runtimes,
    )
    return engine


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
    fields: dict[str, Any] = {"case": "case-a", "script": "tool.py", "args": [], "image": IMAGE}
    return RunSpec(**{**fields, **extra})


class Connector:
    """Stands in for the factory at the edges (engine.connect_url)."""

    def __init__(self, engine: FakeEngine | None = None, error: EngineError | None = None):
        self.engine = engine
        self.error = error
        self.asked: list[tuple[str, str]] = []

    def __call__(self, url: str, source: str) -> FakeEngine:
        self.asked.append((url, source))
        if self.error is not None:
            raise self.error
        assert self.engine is not None
        return self.engine


def test_runc_asks_for_no_runtime_and_reads_nothing_back(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = engine_of()
    record = execute(engine, ws, _spec())
    assert engine.run_requests[-1]["runtime"] is None
    assert "run_runtime" not in engine.methods() and "facts" not in engine.methods()
    assert record.isolation == "runc" and record.status == "succeeded"


def test_gvisor_on_docker_asks_for_runsc_and_checks_it_before_start(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = engine_of("docker", runtimes=("runc", "runsc"))
    record = execute(engine, ws, _spec(isolation="gvisor"))
    assert engine.run_requests[-1]["runtime"] == "runsc"
    calls = engine.methods()
    assert calls.index("run_runtime") < calls.index("run_start")
    assert (record.isolation, record.status) == ("gvisor", "succeeded")


def test_gvisor_on_a_docker_without_runsc_is_exit_5_and_leaves_no_record(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = engine_of("docker")  # create answers "Unknown runtime specified runsc"
    with pytest.raises(IsolationError) as caught:
        execute(engine, ws, _spec(isolation="gvisor"))
    assert caught.value.exit_code == ExitCode.ISOLATION == 5
    assert "daemon.json" in (caught.value.hint or "")
    assert engine.containers_by_id == {} and "run_start" not in engine.methods()
    assert no_run_folder()


def test_gvisor_on_podman_without_a_gvisor_service_is_refused_before_any_container(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = engine_of("podman")
    with pytest.raises(IsolationError) as caught:
        execute(engine, ws, _spec(isolation="gvisor"))
    assert "default runtime is 'runc'" in caught.value.message
    assert "ROSCOE_GVISOR_HOST" in (caught.value.hint or "")
    assert "podman --runtime runsc" in (caught.value.hint or "")
    assert "run_create" not in engine.methods()
    assert no_run_folder()


def test_a_podman_whose_default_runtime_is_runsc_needs_no_gvisor_host(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = engine_of("podman", default_runtime="runsc")
    record = execute(engine, ws, _spec(isolation="gvisor"))
    assert engine.run_requests[-1]["runtime"] is None  # Podman ignores it: never sent
    assert record.status == "succeeded"


def test_gvisor_host_is_where_the_run_goes_and_is_closed_after(
    ws: Workspace, isolated_dirs: Path
) -> None:
    main = engine_of("podman")
    gvisor = engine_of("podman", default_runtime="runsc", url=PODMAN_GVISOR)
    connect = Connector(gvisor)
    record = execute(
        main, ws, _spec(isolation="gvisor", gvisor_host=PODMAN_GVISOR), connect=connect
    )
    assert connect.asked == [(PODMAN_GVISOR, GVISOR_HOST_SETTING)]
    assert main.calls == []  # nothing on the usual engine
    calls = gvisor.methods()
    assert calls.index("run_create") < calls.index("run_runtime") < calls.index("run_attach")
    assert "facts" not in calls  # a run does not pay Podman's slow /info
    assert gvisor.closed and record.status == "succeeded"


def test_a_container_not_under_gvisor_is_removed_unstarted(
    ws: Workspace, isolated_dirs: Path
) -> None:
    gvisor = engine_of("podman", url=PODMAN_GVISOR)  # an ordinary Podman service
    spec = _spec(isolation="gvisor", gvisor_host=PODMAN_GVISOR)
    with pytest.raises(IsolationError) as caught:
        execute(engine_of("podman"), ws, spec, connect=Connector(gvisor))
    assert "under 'runc', not gVisor's runsc: nothing ran" in caught.value.message
    assert "run_start" not in gvisor.methods() and gvisor.containers_by_id == {}
    assert gvisor.closed
    assert no_run_folder()


def test_an_unreachable_gvisor_host_is_exit_5(ws: Workspace, isolated_dirs: Path) -> None:
    connect = Connector(error=EngineError("nothing answers", hint="start it"))
    spec = _spec(isolation="gvisor", gvisor_host=PODMAN_GVISOR)
    with pytest.raises(IsolationError) as caught:
        execute(engine_of("podman"), ws, spec, connect=connect)
    assert caught.value.exit_code == 5
    assert "nothing answers" in caught.value.message


def test_gvisor_under_rootless_podman_without_delegated_cgroups_is_refused(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = engine_of("podman", rootless=True, controllers=())
    with pytest.raises(IsolationError) as caught:
        execute(engine, ws, _spec(isolation="gvisor"))
    assert "rootless Podman" in caught.value.message and "memory, pids" in caught.value.message
    assert "run_create" not in engine.methods()


def test_bad_input_is_still_refused_first(ws: Workspace, isolated_dirs: Path) -> None:
    engine = engine_of("podman")
    with pytest.raises(UsageError):
        execute(engine, ws, _spec(isolation="gvisor", case="nope"))
    assert engine.calls == []


def test_thorough_checks_ask_the_engine_itself() -> None:
    with pytest.raises(IsolationError, match="no runtime 'runsc'"):
        place(engine_of("docker"), "gvisor", None, thorough=True)
    docker = engine_of("docker", runtimes=("runc", "runsc"))
    assert place(docker, "gvisor", None, thorough=True).runtime == "runsc"
    wrong = engine_of("podman", url=PODMAN_GVISOR)  # gvisor_host names a runc service
    with pytest.raises(IsolationError, match=r"run\.gvisor_host"):
        place(engine_of("podman"), "gvisor", PODMAN_GVISOR, Connector(wrong), thorough=True)
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
