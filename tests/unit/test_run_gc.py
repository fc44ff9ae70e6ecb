"""Which run containers gc sweeps, and which it must leave alone."""

from __future__ import annotations

from typing import Any

import pytest

from roscoe.engine.fake import Call, FakeEngine
from roscoe.errors import OperationFailed
from roscoe.labels import (
    LABEL_DEADLINE,
    LABEL_KIND,
    LABEL_MANAGED_BY,
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


def _fake_with(
    state: str, deadline: float, *, exit_code: int = 0, pid: int = 42
) -> tuple[FakeEngine, str]:
    """The fake engine holding one run container labelled as `_container` labels them."""
    engine = FakeEngine()
    labels = {
        LABEL_MANAGED_BY: "roscoe",
        LABEL_KIND: "run",
        **_container(state, deadline, pid)["Labels"],
    }
    container_id = engine.add_container(
        f"roscoe-run-{pid}", image="img", labels=labels, status=state, exit_code=exit_code
    )
    return engine, container_id


def test_collect_dry_run_removes_nothing_and_real_run_removes() -> None:
    import time

    engine, overdue = _fake_with("running", time.time() - 5)
    live = engine.add_container(
        "roscoe-run-43",
        labels={
            LABEL_MANAGED_BY: "roscoe",
            LABEL_KIND: "run",
            **_container("running", time.time() + 500, 43)["Labels"],
        },
    )
    server = engine.add_container(
        "not-a-run", labels={LABEL_MANAGED_BY: "roscoe", LABEL_KIND: "server"}
    )
    result = gc.collect(engine, dry_run=True)
    assert engine.label_queries == [{"io.roscoe.managed-by": "roscoe", "io.roscoe.kind": "run"}]
    assert [i.run_id for i in result.removed] == ["run-42"] and engine.changes() == []
    assert result.kept == 1

    result = gc.collect(engine, dry_run=False)
    assert engine.changes() == [Call("remove_container", overdue)]
    assert set(engine.containers_by_id) == {live, server}
    assert result.to_json()["removed"][0]["name"] == "roscoe-run-42"


def test_collect_reports_a_container_it_could_not_remove() -> None:
    import time

    engine, overdue = _fake_with("running", time.time() - 5)
    engine.fail("remove_container", OperationFailed("could not remove: device busy"), overdue)
    result = gc.collect(engine, dry_run=False)
    assert result.removed == [] and "device busy" in result.failed[0][1]
    assert overdue in engine.containers_by_id


@pytest.mark.parametrize(
    ("state", "code", "status", "exit_code", "said"),
    [
        # created, never started: engines report exit 0, which must not read as success
        ("created", 0, "interrupted", None, "never"),
        ("exited", 0, "succeeded", 0, "exited with 0"),
        ("exited", 137, "failed", 137, "with 137"),
        ("running", 0, "error", None, "still running"),
    ],
)
def test_gc_finishes_the_record_its_roscoe_never_wrote(
    state: str, code: int, status: str, exit_code: int | None, said: str
) -> None:
    import time

    write_record(RunRecord(id="run-42", case="c", script="s.py", started_at=now_iso()))
    # Past its deadline, so gc sweeps it whatever its state.
    engine, abandoned = _fake_with(state, time.time() - 5, exit_code=code)
    gc.collect(engine, dry_run=False)
    record = load_run("run-42")
    assert (record.status, record.exit_code) == (status, exit_code)
    assert said in str(record.message) and "roscoe gc" in str(record.message)
    assert engine.changes() == [Call("remove_container", abandoned)]


def test_gc_leaves_a_finished_record_alone() -> None:
    import time

    write_record(RunRecord(id="run-42", case="c", script="s.py", status="failed", exit_code=3))
    engine, _ = _fake_with("exited", time.time() - 5)
    gc.collect(engine, dry_run=False)
    assert (load_run("run-42").status, load_run("run-42").exit_code) == ("failed", 3)


# -- runs a runner container started --------------------------------------------------------
STARTED = "2024-05-01T12:00:00.123456789Z"  # the fake's StartedAt of a container it holds


def _runner_world(runner_status: str | None, runs: dict[str, str]) -> tuple[FakeEngine, str]:
    """A runner (in `runner_status`, or removed when None) and run containers it started,
    {run id: state}, labelled as run_labels() labels them with an owner (no pid or host)."""
    import time

    engine = FakeEngine()
    runner = engine.add_container(
        "roscoe-runner", labels={LABEL_MANAGED_BY: "roscoe", LABEL_KIND: "server"}
    )
    for run_id, state in runs.items():
        engine.add_container(
            f"roscoe-run-{run_id}",
            image="img",
            status=state,
            exit_code=3 if state == "exited" else 0,
            labels={
                LABEL_MANAGED_BY: "roscoe",
                LABEL_KIND: "run",
                LABEL_RUN_ID: run_id,
                LABEL_DEADLINE: str(int(time.time() + 3000)),
                LABEL_OWNER_CONTAINER: runner,
                LABEL_OWNER_STARTED: STARTED,
            },
        )
    if runner_status is None:
        engine.remove_container(runner, force=True)
    else:
        engine.containers_by_id[runner]["State"].update(
            Status=runner_status, Running=runner_status == "running"
        )
    return engine, runner


def _run_containers(engine: FakeEngine) -> list[str]:
    return [c["Names"][0] for c in engine.containers({LABEL_KIND: "run"})]


@pytest.mark.parametrize(
    ("runner_status", "restarted", "says"),
    [
        (None, False, "is gone"),
        ("exited", False, "has stopped"),
        ("running", True, "has restarted since it started the run"),
    ],
)
def test_runs_of_a_runner_that_is_no_more_are_stopped_and_recorded_interrupted(
    runner_status: str | None, restarted: bool, says: str
) -> None:
    write_record(RunRecord(id="run-7", case="c", script="s.py", started_at=now_iso()))
    write_record(RunRecord(id="run-8", case="c", script="s.py", started_at=now_iso()))
    engine, runner = _runner_world(runner_status, {"run-7": "running", "run-8": "exited"})
    if restarted:  # the engine restarted it (a crash): same id, another start
        engine.containers_by_id[runner]["State"]["StartedAt"] = "2024-06-01T00:00:00Z"
    result = gc.collect(engine, dry_run=False)
    assert _run_containers(engine) == []
    assert all(f"its runner container ({runner[:12]}) {says}" in i.reason for i in result.removed)
    stopped, ended = load_run("run-7"), load_run("run-8")
    assert (stopped.status, stopped.exit_code) == ("interrupted", None)
    assert "stopped while running" in str(stopped.message) and says in str(stopped.message)
    assert (ended.status, ended.exit_code) == ("failed", 3)  # its real end


def test_runs_of_a_live_runner_are_left_to_it() -> None:
    engine, _ = _runner_world("running", {"run-7": "running", "run-8": "exited"})
    result = gc.collect(engine, dry_run=False)
    assert (len(_run_containers(engine)), result.kept) == (2, 2)


def test_the_service_sweeps_runner_runs_with_records_here_only() -> None:
    import time

    write_record(RunRecord(id="run-7", case="c", script="s.py", started_at=now_iso()))
    engine, _ = _runner_world(None, {"run-7": "exited", "run-of-another-data-dir": "exited"})
    cli_run = {LABEL_MANAGED_BY: "roscoe", LABEL_KIND: "run"}
    cli_run.update(_container("exited", time.time() - 5)["Labels"])  # overdue, not a runner's
    engine.add_container("roscoe-run-42", image="img", status="exited", labels=cli_run)
    gc.collect(engine, dry_run=False, runner_runs_only=True)
    assert sorted(_run_containers(engine)) == [
        "/roscoe-run-42",
        "/roscoe-run-run-of-another-data-dir",
    ]


def test_a_finished_run_its_roscoe_lost_track_of_is_swept_and_finished_from_its_end() -> None:
    # The runner is alive, but it gave the run up when the engine stopped answering.
    write_record(RunRecord(id="run-7", case="c", script="s.py", status="unknown", exit_code=125))
    engine, _ = _runner_world("running", {"run-7": "running"})
    assert gc.collect(engine, dry_run=False).kept == 1
    assert load_run("run-7").status == "unknown"  # still running: nothing known yet

    engine.end(0, "roscoe-run-run-7")
    result = gc.collect(engine, dry_run=False)
    assert "lost track of it" in result.removed[0].reason
    record = load_run("run-7")
    assert (record.status, record.exit_code) == ("succeeded", 0)
    assert str(record.message).startswith("roscoe lost track of this run when the engine")


def test_a_record_another_sweep_finished_first_is_left_as_it_is() -> None:
    write_record(RunRecord(id="run-7", case="c", script="s.py", started_at=now_iso()))
    gc.close_abandoned_record(FakeEngine(), "id-gone", "run-7", "gone", stopping=True)
    assert load_run("run-7").status == "running"
