"""A run backend for the service's unit tests: runs nothing, records what it was asked.

It stands where the run core (and the engine behind it) stands in production, so the
scheduler, the app and the HTTP layer are exercised as they are.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.errors import UsageError
from roscoe.service.api import ExecutionService
from roscoe.service.live import LiveRun
from roscoe.service.log import JsonLog
from roscoe.service.scheduler import Scheduler
from roscoe.service.validate import RunRequest

TOKEN = "unit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeBackend:
    """Runs block on `gate` (set by default), print `output`, and end as `status`."""

    def __init__(self) -> None:
        self.runs: list[RunRequest] = []
        self.gate = threading.Event()
        self.gate.set()
        self.records: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.outputs: dict[str, bytes] = {}
        self.tails: list[int] = []
        self.output = b"hi\n"
        self.started = threading.Event()
        self.fail_with: Exception | None = None
        self._n = 0
        self._lock = threading.Lock()

    def new_run_id(self) -> str:
        with self._lock:
            self._n += 1
            return f"run-{self._n}"

    def check(self, request: RunRequest) -> None:
        if request.case == "missing":
            raise UsageError("case 'missing' does not exist", hint="cases are the folders in x")

    def draft_record(self, request: RunRequest, run_id: str, status: str) -> dict[str, Any]:
        return {
            "id": run_id,
            "case": request.case,
            "script": request.script,
            "args": list(request.args),
            "status": status,
            "exit_code": None,
            "duration_s": None,
        }

    def run(self, live: LiveRun) -> dict[str, Any]:
        self.runs.append(live.request)
        if self.fail_with is not None:
            raise self.fail_with
        self.started.set()
        live.publish_output("stdout", self.output)
        while not self.gate.wait(0.01):
            if live.cancel.is_set():
                self.cancelled.append(live.id)
                record = {**self.draft_record(live.request, live.id, "interrupted")}
                record.update(exit_code=130, duration_s=0.5)
                self.records[live.id] = record
                return record
        record = {**self.draft_record(live.request, live.id, "succeeded")}
        record.update(exit_code=0, duration_s=0.2)
        self.records[live.id] = record
        self.outputs.setdefault(live.id, self.output)
        return record

    def save_record(self, record: dict[str, Any]) -> None:
        self.records[record["id"]] = dict(record)

    def list_runs(
        self, limit: int, shown: Callable[[str], bool] | None = None
    ) -> list[dict[str, Any]]:
        found = [r for r in reversed(self.records.values()) if shown is None or shown(r["case"])]
        return found[:limit]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self.records.get(run_id)

    def read_output(self, run_id: str, tail_bytes: int) -> tuple[bytes, bool] | None:
        self.tails.append(tail_bytes)
        if run_id not in self.records:
            return None
        output = self.outputs.get(run_id, b"")
        return output[-tail_bytes:], len(output) > tail_bytes

    def apply_preview(self, run_id: str, caller: str) -> dict[str, Any]:
        record = self.records[run_id]
        if record.get("preview_state") != "pending":
            raise UsageError(f"run {run_id} is not a pending preview")
        record.update(preview_state="applied", applied_by=caller)
        return record

    def discard_preview(self, run_id: str, caller: str) -> dict[str, Any]:
        record = self.records[run_id]
        if record.get("preview_state") != "pending":
            raise UsageError(f"run {run_id} is not a pending preview")
        record.update(preview_state="discarded", discarded_by=caller)
        return record

    def list_cases(self) -> list[dict[str, Any]]:
        return [{"name": "a", "modified_at": "2026-01-01T00:00:00.000Z"}]

    def list_tools(self) -> list[dict[str, Any]]:
        return [{"name": "s.py", "kind": "python", "description": "Says hi."}]


def make_service(
    backend: FakeBackend,
    log_stream: io.StringIO,
    concurrency: int = 1,
    queue: int = 1,
    tokens_file: Path | None = None,
) -> ExecutionService:
    log = JsonLog(log_stream, secrets=[TOKEN])
    return ExecutionService(
        token=TOKEN,
        scheduler=Scheduler(backend, concurrency, queue, log),
        health_info={"version": "0.0", "engine": {"kind": "fake", "version": "1"}},
        log=log,
        tokens_file=tokens_file,
    )


def until(predicate: Any, what: str = "condition", deadline_s: float = 10) -> None:
    """Poll `predicate` until true, at most `deadline_s` seconds."""
    import time

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    fake = FakeBackend()
    yield fake
    fake.gate.set()  # never leave a run thread blocked behind a test
