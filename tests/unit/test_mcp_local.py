"""The backend of `roscoe mcp`: runs in this process through the run core, with the engine
faked at its one seam. Slots, the waiting line, cancel of queued and running runs, records."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.errors import UsageError
from roscoe.images.choice import ImageChoice
from roscoe.mcp.backend import LOCAL_USER, RunAsk
from roscoe.mcp.local import LocalBackend, LocalLimits
from roscoe.runs.records import load_run
from roscoe.runs.workspace import Workspace


class HangingEngine:
    """A container that prints one line, then runs until it is killed."""

    kind = "docker"

    def __init__(self) -> None:
        self.killed = threading.Event()
        self.created = 0
        self.removed = 0

    def podman_rootless(self) -> bool:
        return False

    def image_inspect(self, ref: str) -> dict[str, Any]:
        return {"Id": "sha256:abc", "RepoDigests": []}

    def run_create(self, **kwargs: Any) -> str:
        self.created += 1
        return f"cid-{self.created}"

    def run_attach(self, container_id: str) -> Any:
        engine = self

        class Stream:
            def __iter__(self) -> Iterator[tuple[str, bytes]]:
                yield "stdout", b"working\n"
                engine.killed.wait(10)

            def close(self) -> None:
                pass

        return Stream()

    def run_start(self, container_id: str) -> None:
        pass

    def run_kill(self, container_id: str) -> None:
        self.killed.set()

    def run_state(self, container_id: str) -> dict[str, Any]:
        return {"running": False, "exit_code": 137 if self.killed.is_set() else 0}

    def run_wait(self, container_id: str, timeout: float | None = None) -> int:
        return 137

    def run_remove(self, container_id: str) -> None:
        self.removed += 1

    def close(self) -> None:
        pass


@pytest.fixture
def engine() -> HangingEngine:
    return HangingEngine()


@pytest.fixture
def backend(tmp_path: Path, isolated_dirs: Path, engine: HangingEngine) -> Iterator[LocalBackend]:
    root = tmp_path / "ws"
    (root / "projects" / "case-a").mkdir(parents=True)
    (root / "Tools").mkdir()
    (root / "Tools" / "tool.py").write_text('"""Does a thing."""\n')
    made = LocalBackend(
        connect=lambda: engine,  # type: ignore[arg-type, return-value]
        workspace=Workspace(root.resolve()),
        image=ImageChoice("img:1", "--image"),
        limits=LocalLimits(concurrency=1, queue=1),
    )
    yield made
    made.close()


ASK = RunAsk(case="case-a", script="tool.py", args=("x",))


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
    assert load_run(second.run_id).message == "cancelled before it started"

    running = backend.cancel(first.run_id, LOCAL_USER)
    assert (running.status, running.record["exit_code"]) == ("cancelled", 130)
    assert load_run(first.run_id).status == "cancelled"
    with pytest.raises(UsageError, match="already over"):
        backend.cancel(first.run_id, LOCAL_USER)
    with pytest.raises(UsageError, match="no run with id"):
        backend.cancel("20990101-000000-00000000", LOCAL_USER)


def test_wait_returns_when_the_run_is_over(backend: LocalBackend, engine: HangingEngine) -> None:
    view = backend.start(ASK, LOCAL_USER)
    assert not backend.wait(view.run_id, 0.05).finished
    engine.killed.set()  # the script ends by itself (as the engine sees it)
    done = backend.wait(view.run_id, 10)
    assert done.finished
    assert done.record["exit_code"] == 137
    assert engine.removed == 1


def test_close_stops_everything(backend: LocalBackend, engine: HangingEngine) -> None:
    first = backend.start(ASK, LOCAL_USER)
    second = backend.start(ASK, LOCAL_USER)
    backend.close()
    assert load_run(second.run_id).status == "cancelled"
    assert load_run(first.run_id).status == "interrupted"
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
