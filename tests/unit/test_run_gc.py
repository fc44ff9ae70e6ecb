"""Which run containers gc sweeps, and which it must leave alone."""

from __future__ import annotations

from typing import Any

import pytest

from roscoe.labels import LABEL_DEADLINE, LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_RUN_ID
from roscoe.runs import gc
from roscoe.runs.records import RunRecord, load_run, now_iso, write_record

NOW = 1_000_000.0
HOST = "this-host"


def _container(state: str, deadline: float, pid: int = 42, host: str = HOST) -> dict[str, Any]:
    return {
        "Id": f"id-{state}-{deadline}-{pid}-{host}",
        "Names": [f"/roscoe-run-{pid}"],
        "State": state,
        "Labels": {
            LABEL_DEADLINE: str(int(deadline)),
            LABEL_OWNER_PID: str(pid),
            LABEL_OWNER_HOST: host,
            LABEL_RUN_ID: f"run-{pid}",
        },
    }


def _reason(container: dict[str, Any], alive: bool) -> str | None:
    return gc.sweep_reason(container, now=NOW, host=HOST, alive=lambda pid: alive)


def test_running_is_kept_until_its_deadline() -> None:
    assert _reason(_container("running", NOW + 10), alive=False) is None
    assert "past its deadline" in str(_reason(_container("running", NOW - 1), alive=True))


def test_finished_with_a_dead_owner_is_swept() -> None:
    assert "is gone" in str(_reason(_container("exited", NOW + 100), alive=False))
    assert "is gone" in str(_reason(_container("created", NOW + 100), alive=False))


def test_finished_with_a_live_owner_is_left_to_it() -> None:
    assert _reason(_container("exited", NOW + 100), alive=True) is None
    assert _reason(_container("created", NOW + 100), alive=True) is None
    assert "past its deadline" in str(_reason(_container("exited", NOW - 1), alive=True))


def test_another_hosts_pid_means_nothing_here() -> None:
    other = _container("exited", NOW + 100, host="runner-container")
    assert _reason(other, alive=False) is None
    assert _reason(_container("exited", NOW - 1, host="elsewhere"), alive=True) is not None


class FakeEngine:
    def __init__(self, found: list[dict[str, Any]], fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.found = found
        self.fail = fail
        self.removed: list[str] = []
        self.asked: dict[str, str] = {}

    def containers(self, labels: dict[str, str], all: bool = True) -> list[dict[str, Any]]:
        self.asked = dict(labels)
        return self.found

    def remove_container(self, ref: str, force: bool = True) -> bool:
        if ref in self.fail:
            raise RuntimeError("device busy")
        self.removed.append(ref)
        return True


def test_collect_dry_run_removes_nothing_and_real_run_removes(monkeypatch: object) -> None:
    import time

    overdue = _container("running", time.time() - 5)
    live = _container("running", time.time() + 500)
    engine = FakeEngine([overdue, live])
    result = gc.collect(engine, dry_run=True)  # type: ignore[arg-type]
    assert engine.asked == {"io.roscoe.managed-by": "roscoe", "io.roscoe.kind": "run"}
    assert [i.run_id for i in result.removed] == ["run-42"] and engine.removed == []
    assert result.kept == 1

    result = gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    assert engine.removed == [overdue["Id"]]
    assert result.to_json()["removed"][0]["name"] == "roscoe-run-42"


def test_collect_reports_a_container_it_could_not_remove() -> None:
    import time

    overdue = _container("running", time.time() - 5)
    engine = FakeEngine([overdue], fail={overdue["Id"]})
    result = gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    assert result.removed == [] and "device busy" in result.failed[0][1]


class InspectingEngine(FakeEngine):
    def __init__(self, found: list[dict[str, Any]], states: dict[str, dict[str, Any]]) -> None:
        super().__init__(found)
        self.states = states

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        return {"State": self.states[ref]}


@pytest.mark.parametrize(
    ("state", "status", "exit_code", "said"),
    [
        # created, never started: engines report exit 0, which must not read as success
        ({"Status": "created", "Running": False, "ExitCode": 0}, "interrupted", None, "never"),
        ({"Status": "exited", "Running": False, "ExitCode": 0}, "succeeded", 0, "exited with 0"),
        ({"Status": "exited", "Running": False, "ExitCode": 137}, "failed", 137, "with 137"),
        ({"Status": "running", "Running": True, "ExitCode": 0}, "error", None, "still running"),
    ],
)
def test_gc_finishes_the_record_its_roscoe_never_wrote(
    state: dict[str, Any], status: str, exit_code: int | None, said: str
) -> None:
    import time

    write_record(RunRecord(id="run-42", case="c", script="s.py", started_at=now_iso()))
    abandoned = _container("exited", time.time() - 5)
    engine = InspectingEngine([abandoned], {abandoned["Id"]: state})
    gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    record = load_run("run-42")
    assert (record.status, record.exit_code) == (status, exit_code)
    assert said in str(record.message) and "roscoe gc" in str(record.message)
    assert engine.removed == [abandoned["Id"]]


def test_gc_leaves_a_finished_record_alone() -> None:
    import time

    write_record(RunRecord(id="run-42", case="c", script="s.py", status="failed", exit_code=3))
    abandoned = _container("exited", time.time() - 5)
    engine = InspectingEngine([abandoned], {abandoned["Id"]: {"Status": "exited", "ExitCode": 0}})
    gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    assert (load_run("run-42").status, load_run("run-42").exit_code) == ("failed", 3)
