"""One malformed run.json never takes a listing down: `roscoe runs list` skips it with a
warning, and the service's GET /runs leaves it out (it answered 500)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import roscoe
from roscoe.config import paths
from roscoe.engine.fake import FakeEngine
from roscoe.runs import records
from roscoe.runs.records import RunRecord
from roscoe.runs.workspace import Workspace
from roscoe.service.api import ExecutionService
from roscoe.service.app import create_app
from roscoe.service.backend import CoreBackend, RunDefaults
from roscoe.service.log import JsonLog
from roscoe.service.scheduler import Scheduler

GOOD = "20260101-000000-aaaaaaaa"
BAD = "20260101-000001-bbbbbbbb"


@pytest.fixture
def runs(isolated_dirs: Path) -> None:
    records.write_record(
        RunRecord(id=GOOD, case="c", script="s.py", started_at="2026-01-01T00:00:00.000Z")
    )
    paths.run_dir(BAD).mkdir(parents=True)
    (paths.run_dir(BAD) / "run.json").write_text(json.dumps({"id": BAD, "started_at": 12}))


@pytest.mark.usefixtures("runs")
def test_runs_list_skips_a_malformed_record_with_a_warning() -> None:
    done = roscoe("runs", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)] == [GOOD]
    err = done.stderr.decode()
    assert f"warning: skipped: the record of run '{BAD}' is malformed: 'case' is missing" in err
    assert "Traceback" not in err
    plain = roscoe("runs", "list")
    assert plain.returncode == 0, plain.stderr
    assert GOOD in plain.stdout.decode() and BAD not in plain.stdout.decode()


@pytest.mark.usefixtures("runs")
def test_the_service_lists_the_readable_runs(tmp_path: Path) -> None:
    (tmp_path / "ws" / "projects").mkdir(parents=True)
    (tmp_path / "ws" / "Tools").mkdir()
    backend = CoreBackend(
        FakeEngine,  # listing needs no engine
        Workspace(tmp_path / "ws"),
        RunDefaults(image="img"),
    )
    log = JsonLog(io.StringIO())
    service = ExecutionService(
        token="t" * 20, scheduler=Scheduler(backend, 1, 1, log), health_info={}, log=log
    )
    with TestClient(create_app(service)) as client:
        answer = client.get("/runs", headers={"Authorization": "Bearer " + "t" * 20})
    assert answer.status_code == 200, answer.text
    assert [r["id"] for r in answer.json()["runs"]] == [GOOD]
    assert backend.get_run(BAD) is None  # GET /runs/{id}: 404, not 500
