"""The backend of `roscoe mcp`: the service's run machinery in this process, with the engine
faked at its one seam. Slots, the waiting line, cancel of queued and running runs, records."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.engine.fake import FakeEngine, Program
from roscoe.errors import UsageError
from roscoe.images.choice import ImageChoice
from roscoe.mcp.backend import RunAsk
from roscoe.mcp.local import LocalBackend, LocalLimits, local_user
from roscoe.runs.records import load_run
from roscoe.runs.workspace import Workspace


@pytest.fixture
def engine() -> FakeEngine:
    """Its containers print one line, then run until killed (or told to end)."""
    fake = FakeEngine()
    fake.add_image("img:1")
    fake.default_program = Program(output=[("stdout", b"working\n")], until_stopped=True)
    return fake


@pytest.fixture
def backend(tmp_path: Path, isolated_dirs: Path, engine: FakeEngine) -> Iterator[LocalBackend]:
    root = tmp_path / "ws"
    (root / "projects" / "case-a").mkdir(parents=True)
    (root / "Tools").mkdir()
    (root / "Tools" / "tool.py").write_text('"""Does a thing."""\n')
    made = LocalBackend(
        connect=lambda: engine,
        workspace=Workspace(root.resolve()),
        image=ImageChoice("img:1", "--image"),
        limits=LocalLimits(concurrency=1, queue=1),
    )
    yield made
    made.close()


ASK = RunAsk(case="case-a", script="tool.py", args=("x",))
LOCAL_USER = local_user()


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_discovery_reads_the_workspace(backend: LocalBackend) -> None:
    assert [c["name"] for c in backend.list_cases(LOCAL_USER)] == ["case-a"]
    assert backend.list_tools(LOCAL_USER) == [
        {"name": "tool.py", "kind": "python", "description": "Does a thing."}
    ]


def test_bad_names_are_refused_before_anything_waits(backend: LocalBackend) -> None:
    with pytest.raises(UsageError, match="case 'nope' does not exist"):
        backend.start(RunAsk(case="nope", script="tool.py"), LOCAL_USER)
    with pytest.raises(UsageError, match=r"'\.\.'"):
        backend.start(RunAsk(case="case-a", script="../x.py"), LOCAL_USER)


def test_slots_then_the_line_then_a_refusal(backend: LocalBackend) -> None:
    first = backend.start(ASK, LOCAL_USER)
    second = backend.start(ASK, LOCAL_USER)
    assert (first.status, second.status) == ("running", "queued")
    with pytest.raises(UsageError, match="1 runs in flight and 1 waiting") as refused:
        backend.start(ASK, LOCAL_USER)
    assert "cancel_run" in (refused.value.hint or "")
    wait_until(lambda: backend.view(first.run_id, LOCAL_USER, 100).output, "output")
    assert backend.view(first.run_id, LOCAL_USER, 100).output == "working\n"

    queued = backend.cancel(second.run_id, LOCAL_USER)
    assert (queued.status, queued.record["exit_code"]) == ("cancelled", 130)
    assert load_run(second.run_id).message == "cancelled on request (cancel_run)"
    assert load_run(second.run_id).requested_by == LOCAL_USER.name  # mcp:<user>

    running = backend.cancel(first.run_id, LOCAL_USER)
    assert (running.status, running.record["exit_code"]) == ("cancelled", 130)
    assert load_run(first.run_id).status == "cancelled"
    with pytest.raises(UsageError, match="over already"):
        backend.cancel(first.run_id, LOCAL_USER)
    with pytest.raises(UsageError, match="no run 20990101-000000-00000000"):
        backend.cancel("20990101-000000-00000000", LOCAL_USER)


def test_wait_returns_when_the_run_is_over(backend: LocalBackend, engine: FakeEngine) -> None:
    view = backend.start(ASK, LOCAL_USER)
    assert not backend.wait(view.run_id, 0.05).finished
    engine.end(137)  # the script ends by itself (as the engine sees it)
    done = backend.wait(view.run_id, 10)
    assert done.finished
    assert done.record["exit_code"] == 137
    assert engine.methods().count("run_remove") == 1
    assert engine.containers_by_id == {}


def test_close_stops_everything(backend: LocalBackend, engine: FakeEngine) -> None:
    first = backend.start(ASK, LOCAL_USER)
    second = backend.start(ASK, LOCAL_USER)
    assert sorted(backend.close()) == sorted([first.run_id, second.run_id])
    assert load_run(second.run_id).status == "cancelled"
    assert load_run(first.run_id).status == "interrupted"
    assert engine.containers_by_id == {}  # removed before close() returned
    with pytest.raises(Exception, match="shutting down"):
        backend.start(ASK, LOCAL_USER)


def test_roscoe_mcp_without_the_sdk_says_how_to_get_it(isolated_dirs: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['mcp'] = None  # as if roscoe[mcp] were not installed\n"
        "sys.argv = ['roscoe', 'mcp']\n"
        "from roscoe.cli.app import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: roscoe mcp needs the MCP SDK, which is not installed"
    assert "pipx install --force 'roscoe[mcp]'" in lines[1]
    assert len(lines) == 2
    assert result.stdout == ""
