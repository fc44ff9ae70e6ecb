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
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
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
