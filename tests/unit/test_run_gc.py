"""Which run containers gc sweeps, and which it must leave alone."""

from __future__ import annotations

from typing import Any

import pytest

from roscoe.labels import (
    LABEL_DEADLINE,
    LABEL_OWNER_CONTAINER,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_STARTED,
    LABEL_RUN_ID,
)
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


# -- runs a runner container started (issue 10 item 4) ----------------------------------------
RUNNER = "runner-" + "a" * 57
STARTED = "2026-01-01T00:00:00.123456789Z"


def _runner_run(state: str, deadline: float, run_id: str = "run-7") -> dict[str, Any]:
    # What run_labels() gives with an owner: no pid or host name, which meant nothing there.
    return {
        "Id": f"id-{run_id}-{state}",
        "Names": [f"/roscoe-run-{run_id}"],
        "State": state,
        "Labels": {
            LABEL_DEADLINE: str(int(deadline)),
            LABEL_RUN_ID: run_id,
            LABEL_OWNER_CONTAINER: RUNNER,
            LABEL_OWNER_STARTED: STARTED,
        },
    }


class RunnerWorld(FakeEngine):
    """Run containers, the runner that started them (or not), and inspect for both."""

    def __init__(self, runs: list[dict[str, Any]], runner: dict[str, Any] | None) -> None:
        super().__init__(runs)
        self.runner = runner
        self.run_states = {
            r["Id"]: {
                "Status": r["State"],
                "Running": r["State"] == "running",
                "ExitCode": 0 if r["State"] == "running" else 3,
            }
            for r in runs
        }

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        if ref == RUNNER:
            return self.runner
        if ref in self.removed or ref not in self.run_states:
            return None
        return {"State": self.run_states[ref]}


@pytest.mark.parametrize(
    ("runner", "says"),
    [
        (None, "its runner container (runner-aaaaa) is gone"),
        ({"State": {"Running": False, "Status": "exited"}}, "has stopped"),
        ({"State": {"Running": True, "StartedAt": "2026-02-02T00:00:00Z"}}, "has restarted"),
    ],
)
def test_runs_of_a_runner_that_is_no_more_are_stopped_and_recorded_interrupted(
    runner: dict[str, Any] | None, says: str
) -> None:
    import time

    write_record(RunRecord(id="run-7", case="c", script="s.py", started_at=now_iso()))
    write_record(RunRecord(id="run-8", case="c", script="s.py", started_at=now_iso()))
    running = _runner_run("running", time.time() + 3000, "run-7")
    finished = _runner_run("exited", time.time() + 3000, "run-8")
    engine = RunnerWorld([running, finished], runner)
    result = gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    assert sorted(engine.removed) == sorted([running["Id"], finished["Id"]])
    assert all(says in item.reason for item in result.removed)
    stopped, ended = load_run("run-7"), load_run("run-8")
    assert (stopped.status, stopped.exit_code) == ("interrupted", None)
    assert "stopped while running" in str(stopped.message) and says in str(stopped.message)
    assert (ended.status, ended.exit_code) == ("failed", 3)  # its real end


def test_runs_of_a_live_runner_are_left_to_it() -> None:
    import time

    runner = {"State": {"Running": True, "StartedAt": STARTED}}
    runs = [_runner_run("running", time.time() + 3000), _runner_run("exited", time.time() + 3000)]
    engine = RunnerWorld(runs, runner)
    result = gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    assert (engine.removed, result.kept) == ([], 2)


def test_the_service_sweeps_runner_runs_only() -> None:
    import time

    cli_run = _container("exited", time.time() - 5)  # overdue, but a CLI run: not the service's
    runner_run = _runner_run("exited", time.time() + 3000)
    elsewhere = _runner_run("exited", time.time() + 3000, "run-of-another-data-dir")
    write_record(RunRecord(id="run-7", case="c", script="s.py", started_at=now_iso()))
    engine = RunnerWorld([runner_run], None)
    engine.found = [cli_run, runner_run, elsewhere]
    engine.run_states[cli_run["Id"]] = {"Status": "exited", "ExitCode": 0}
    gc.collect(engine, dry_run=False, runner_runs_only=True)  # type: ignore[arg-type]
    assert engine.removed == [runner_run["Id"]]


def test_a_finished_run_its_roscoe_lost_track_of_is_swept_and_finished_from_its_end() -> None:
    import time

    # The runner is alive, but it gave the run up when the engine stopped answering.
    write_record(RunRecord(id="run-7", case="c", script="s.py", status="unknown", exit_code=125))
    runner = {"State": {"Running": True, "StartedAt": STARTED}}
    still = _runner_run("running", time.time() + 3000, "run-7")
    engine = RunnerWorld([still], runner)
    assert gc.collect(engine, dry_run=False).kept == 1  # type: ignore[arg-type]
    assert load_run("run-7").status == "unknown"  # still running: nothing known yet

    ended = _runner_run("exited", time.time() + 3000, "run-7")
    engine = RunnerWorld([ended], runner)
    engine.run_states[ended["Id"]]["ExitCode"] = 0
    result = gc.collect(engine, dry_run=False)  # type: ignore[arg-type]
    assert "lost track of it" in result.removed[0].reason
    record = load_run("run-7")
    assert (record.status, record.exit_code) == ("succeeded", 0)
    assert str(record.message).startswith("roscoe lost track of this run when the engine")


def test_a_record_another_sweep_finished_first_is_left_as_it_is() -> None:
    write_record(RunRecord(id="run-7", case="c", script="s.py", started_at=now_iso()))
    engine = RunnerWorld([], None)
    gc.close_abandoned_record(engine, "id-gone", "run-7", "gone", stopping=True)  # type: ignore[arg-type]
    assert load_run("run-7").status == "running"
