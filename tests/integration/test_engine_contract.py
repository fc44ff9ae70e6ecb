"""One contract, three engines: Docker, Podman, and the FakeEngine every unit test uses.

Each check runs against the real engines and against the fake, through the protocols of the
seam (roscoe.engine.protocols) and nothing else, so the fake cannot drift from what the
engines really do: a check the fake fails is a fake to fix; one a real engine fails is a
difference between engines that roscoe must absorb in engine/.

A container "does" something through `doing()`: a shell command on the real engines, a
`Program` for the fake. Every container carries this test's own label and is removed after.
"""

from __future__ import annotations

import itertools
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pytest

from helpers import BASE_IMAGE, REGISTRY
from roscoe.engine.fake import FakeEngine, Program
from roscoe.engine.protocols import ContainerEngine, ContainerSpec, EngineFacts, RunState
from roscoe.errors import EngineError, ImageError, IsolationError, OperationFailed

pytestmark = pytest.mark.engine

CONTRACT_LABEL = "io.roscoe.test.contract"
ABSENT_IMAGE = "roscoe-test-absent:nope"
T = TypeVar("T")


@pytest.fixture(params=["docker", "podman", "fake"])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The real engines of conftest, and the fake as a third."""
    return str(request.param)


@pytest.fixture
def subject(engine_name: str, request: pytest.FixtureRequest) -> ContainerEngine:
    if engine_name == "fake":
        fake = FakeEngine()
        fake.add_image(BASE_IMAGE)
        fake.facts_answer = EngineFacts(
            rootless=False, default_runtime="runc", runtimes=("runc", "runsc")
        )  # as dockerd here, with gVisor registered
        return fake
    request.getfixturevalue("base_image")  # skips (or fails in CI) without it
    engine: ContainerEngine = request.getfixturevalue("engine")
    return engine


@pytest.fixture
def label(subject: ContainerEngine, unique_name: str) -> Iterator[dict[str, str]]:
    """This test's label; every container carrying it is removed at the end."""
    labels = {CONTRACT_LABEL: unique_name}
    yield labels
    for container in subject.containers(labels, all=True):
        subject.remove_container(str(container["Id"]), force=True)


def doing(
    engine: ContainerEngine,
    output: list[tuple[str, bytes]],
    exit_code: int = 0,
    *,
    until_stopped: bool = False,
) -> list[str]:
    """The command that makes a container of BASE_IMAGE write `output` then exit (or run
    until stopped); the fake is told the same as a Program."""
    if isinstance(engine, FakeEngine):
        engine.programs[BASE_IMAGE] = Program(
            output=output, exit_code=exit_code, until_stopped=until_stopped
        )
    steps = [
        f"printf %s {shlex.quote(data.decode())}" + (" >&2" if name == "stderr" else "")
        for name, data in output
    ]
    steps.append("exec sleep 300" if until_stopped else f"exit {exit_code}")
    return ["sh", "-c", "; ".join(steps)]


def run_container(
    engine: ContainerEngine, name: str, labels: dict[str, str], command: list[str], **extra: Any
) -> str:
    """A one-shot run's container, shaped as roscoe shapes them, created (not started)."""
    arguments: dict[str, Any] = {
        "name": name,
        "image": BASE_IMAGE,
        "entrypoint": command[:1],
        "command": command[1:],
        "user": "1000:1000",
        "workdir": "/",
        "env": {"CONTRACT": "1"},
        "labels": labels,
        "binds": [],
        "network": "none",
        "memory_bytes": 256 << 20,
        "cpus": None,
        "pids_limit": 64,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=16m"},
    }
    arguments.update(extra)
    return engine.run_create(**arguments)


def plain_container(
    engine: ContainerEngine, name: str, labels: dict[str, str], command: list[str]
) -> str:
    """A container made the way the runner's is (create_container), not started."""
    return engine.create_container(
        ContainerSpec(image=BASE_IMAGE, name=name, command=command, labels=labels)
    )


def eventually(check: Callable[[], T | None], what: str, deadline: float = 60) -> T:
    """Poll until `check()` gives something true; fail after the deadline."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def finished(engine: ContainerEngine, container_id: str) -> RunState:
    def done() -> RunState | None:
        state = engine.run_state(container_id)
        assert state is not None, "the container disappeared"
        return None if state.running else state

    return eventually(done, "the container to be reported exited")


def by_stream(pieces: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Consecutive pieces of one stream joined: where the engine cuts them is its own affair."""
    return [
        (number, b"".join(data for _, data in group))
        for number, group in itertools.groupby(pieces, key=lambda piece: piece[0])
    ]


def status(engine: ContainerEngine, ref: str) -> str:
    found = engine.inspect_container(ref)
    assert found is not None
    return str(found["State"]["Status"])


# -- one-shot runs ------------------------------------------------------------------------------
def test_a_run_streams_its_output_and_reports_its_exit(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    output = [("stdout", b"one\n"), ("stderr", b"oops\n"), ("stdout", b"two\n")]
    container_id = run_container(subject, unique_name, label, doing(subject, output, 3))
    assert status(subject, container_id) == "created"
    before = subject.run_state(container_id)
    assert before is not None and (before.running, before.exit_code) == (False, 0)

    stream = subject.run_attach(container_id)
    subject.run_start(container_id)
    got: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    try:
        for name, data in stream:
            got[name] += data
    finally:
        stream.close()
    assert got == {"stdout": b"one\ntwo\n", "stderr": b"oops\n"}

    image = subject.image_inspect(BASE_IMAGE)
    assert image is not None
    assert finished(subject, container_id) == RunState(
        running=False, exit_code=3, oom_killed=False, image_id=image["Id"], error=None
    )
    assert subject.run_wait(container_id, timeout=30) == 3
    assert status(subject, container_id) == "exited"

    subject.run_remove(container_id)
    assert subject.run_state(container_id) is None
    assert subject.inspect_container(container_id) is None
    subject.run_remove(container_id)  # gone already: nothing to do


def test_a_killed_run_exits_137_and_a_second_kill_is_nothing(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    command = doing(subject, [("stdout", b"up\n")], until_stopped=True)
    container_id = run_container(subject, unique_name, label, command)
    subject.run_start(container_id)
    running = subject.run_state(container_id)
    assert running is not None and running.running
    subject.run_kill(container_id)
    assert subject.run_wait(container_id, timeout=30) == 137
    state = finished(subject, container_id)
    assert (state.running, state.exit_code) == (False, 137)
    subject.run_kill(container_id)  # not running any more: nothing to do


def test_a_run_from_an_absent_image_is_exit_4(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    with pytest.raises(ImageError) as caught:
        run_container(subject, unique_name, label, ["true"], image=ABSENT_IMAGE)
    assert caught.value.exit_code == 4
    assert ABSENT_IMAGE in caught.value.message
    assert subject.inspect_container(unique_name) is None


def test_a_run_name_in_use_is_an_engine_failure_125(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    run_container(subject, unique_name, label, doing(subject, []))
    with pytest.raises(EngineError) as caught:
        run_container(subject, unique_name, label, doing(subject, []))
    assert caught.value.exit_code == 125


def test_the_engine_says_how_many_cpus_it_has(subject: ContainerEngine) -> None:
    count = subject.cpu_count()
    assert isinstance(count, int) and count >= 1


def test_the_engine_says_what_it_is_like(subject: ContainerEngine) -> None:
    facts = subject.facts()
    assert facts.rootless is False  # the engines the contract runs on are rootful
    assert facts.default_runtime == "runc" and "runc" in facts.runtimes
    assert subject.facts() is facts  # asked once, then kept
    assert subject.podman_rootless() is False


def test_the_runtime_a_container_got_is_read_back(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    """Docker runs a container under the runtime asked for, and refuses one it does not know
    before any container exists; Podman takes the field and runs it under its own."""
    plain = run_container(subject, unique_name, label, doing(subject, []))
    assert subject.run_runtime(plain) == subject.facts().default_runtime
    asked = f"{unique_name}-runsc"
    if subject.kind == "podman":
        gvisor = run_container(subject, asked, label, doing(subject, []), runtime="runsc")
        assert subject.run_runtime(gvisor) == subject.facts().default_runtime
    elif "runsc" in subject.facts().runtimes:
        gvisor = run_container(subject, asked, label, doing(subject, []), runtime="runsc")
        assert subject.run_runtime(gvisor) == "runsc"
    unknown = f"{unique_name}-x"
    if subject.kind == "podman":  # whatever is asked for
        taken = run_container(subject, unknown, label, doing(subject, []), runtime="roscoe-nope")
        assert subject.run_runtime(taken) == subject.facts().default_runtime
        return
    with pytest.raises(IsolationError) as caught:
        run_container(subject, unknown, label, ["true"], runtime="roscoe-nope")
    assert caught.value.exit_code == 5
    assert subject.inspect_container(unknown) is None


def test_a_signal_reaches_the_first_process(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    if isinstance(subject, FakeEngine):
        subject.programs[BASE_IMAGE] = Program(
            output=[("stdout", b"ready\n")], until_stopped=True, signals={"USR1": 7}
        )
    # Process 1 ignores a signal it has no handler for: the trap is set before "ready".
    command = ["sh", "-c", "trap 'exit 7' USR1; echo ready; while :; do sleep 0.1; done"]
    container_id = run_container(subject, unique_name, label, command)
    stream = subject.run_attach(container_id)
    try:
        subject.run_start(container_id)
        for _, data in stream:
            if b"ready" in data:
                break
        subject.run_kill(container_id, signal="USR1")
        assert subject.run_wait(container_id, timeout=30) == 7
    finally:
        stream.close()


# -- what is not there ----------------------------------------------------------------------
def test_what_is_absent_reads_as_absent(subject: ContainerEngine, unique_name: str) -> None:
    assert subject.inspect_container(unique_name) is None
    assert subject.run_state(unique_name) is None
    assert subject.image_inspect(ABSENT_IMAGE) is None
    assert subject.remove_container(unique_name) is False
    assert subject.stop_container(unique_name, 1) is False
    assert subject.log_tail(unique_name, 5) == b""
    subject.run_remove(unique_name)
    subject.run_kill(unique_name)
    with pytest.raises(OperationFailed):
        list(subject.stream_logs(unique_name))


def test_pulling_what_the_registry_lacks_is_exit_4(subject: ContainerEngine) -> None:
    from roscoe.images.pull import pull_image

    with pytest.raises(ImageError) as caught:  # at once (Docker) or in the stream (Podman)
        pull_image(subject, f"{REGISTRY}/roscoe-test/absent:nope")
    assert caught.value.exit_code == 4
    assert subject.image_inspect(f"{REGISTRY}/roscoe-test/absent:nope") is None


# -- containers by label, name and ID ------------------------------------------------------------
def test_containers_are_found_by_label_name_and_id_prefix(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    first = plain_container(subject, unique_name, {**label, "part": "a"}, doing(subject, []))
    second = plain_container(subject, f"{unique_name}-b", {**label, "part": "b"}, ["true"])

    found = subject.containers({**label, "part": "a"}, all=True)
    assert [c["Id"] for c in found] == [first]
    assert found[0]["Names"] == [f"/{unique_name}"]
    assert found[0]["State"] == "created"
    assert found[0]["Labels"]["part"] == "a"
    assert sorted(c["Id"] for c in subject.containers(label, all=True)) == sorted([first, second])
    assert subject.containers(label, all=False) == []  # none running

    by_name = subject.inspect_container(unique_name)
    by_prefix = subject.inspect_container(first[:12])
    assert by_name is not None and by_prefix is not None
    assert by_name["Id"] == by_prefix["Id"] == first
    assert by_name["Name"] == f"/{unique_name}"
    assert by_name["Config"]["Labels"][CONTRACT_LABEL] == label[CONTRACT_LABEL]


def test_a_running_container_is_removed_only_by_force(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    command = doing(subject, [], until_stopped=True)
    container_id = plain_container(subject, unique_name, label, command)
    subject.start_container(container_id)
    assert status(subject, container_id) == "running"
    with pytest.raises(OperationFailed):
        subject.remove_container(container_id, force=False)
    assert subject.remove_container(container_id, force=True) is True
    assert subject.inspect_container(container_id) is None


# -- the runner's calls: start, stop, logs ----------------------------------------------------
def test_stop_ends_a_running_container_and_keeps_it(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    command = doing(subject, [("stdout", b"serving\n")], until_stopped=True)
    container_id = plain_container(subject, unique_name, label, command)
    subject.start_container(container_id)
    assert status(subject, container_id) == "running"
    assert subject.stop_container(container_id, 1) is True
    found = subject.inspect_container(container_id)
    assert found is not None
    assert (found["State"]["Status"], found["State"]["Running"]) == ("exited", False)
    assert subject.remove_container(container_id) is True
    assert subject.remove_container(container_id) is False


def test_logs_are_tailed_by_the_engine(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    lines = plain_container(
        subject, unique_name, label, doing(subject, [("stdout", b"1\n2\n3\n4\n5\n")])
    )
    subject.start_container(lines)
    eventually(lambda: status(subject, lines) == "exited", "the container to exit")
    assert subject.log_tail(lines, 2) == b"4\n5\n"
    assert b"".join(data for _, data in subject.stream_logs(lines)) == b"1\n2\n3\n4\n5\n"
    assert by_stream(subject.stream_logs(lines, tail=2)) == [(1, b"4\n5\n")]
    assert list(subject.stream_logs(lines, tail=0)) == []

    # Which stream a line came from (the order across the two is the engine's to keep).
    output = [("stdout", b"out\n"), ("stderr", b"err\n")]
    mixed = plain_container(subject, f"{unique_name}-mixed", label, doing(subject, output))
    subject.start_container(mixed)
    eventually(lambda: status(subject, mixed) == "exited", "the container to exit")
    pieces = list(subject.stream_logs(mixed))
    assert b"".join(data for number, data in pieces if number == 1) == b"out\n"
    assert b"".join(data for number, data in pieces if number == 2) == b"err\n"


def test_a_followed_log_ends_when_its_container_does(
    subject: ContainerEngine, label: dict[str, str], unique_name: str
) -> None:
    command = doing(subject, [("stdout", b"up\n")], until_stopped=True)
    container_id = plain_container(subject, unique_name, label, command)
    subject.start_container(container_id)
    eventually(lambda: subject.log_tail(container_id, 1) == b"up\n", "the first line")
    pieces = subject.stream_logs(container_id, follow=True, read_timeout=1.0)
    assert next(pieces) == (1, b"up\n")
    subject.stop_container(container_id, 0)
    rest: list[tuple[int, bytes]] = []
    reader = threading.Thread(target=lambda: rest.extend(pieces), daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the followed stream outlived its container"
    assert rest == []
