"""The service's log level and its own pruning job, without a container."""

from __future__ import annotations

import io
import json
import time

import pytest

from roscoe.config import paths
from roscoe.runs.records import RunRecord, write_record
from roscoe.runs.retention import Policy
from roscoe.service.log import JsonLog
from roscoe.service.retention import RetentionJob


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_below_the_level_are_not_written() -> None:
    out = io.StringIO()
    log = JsonLog(out)
    log("request", level="debug", path="/health")
    log("request", level="info", path="/runs")
    assert [line["path"] for line in lines(out)] == ["/runs"]
    log.level = "debug"
    log("request", level="debug", path="/health")
    assert [line["path"] for line in lines(out)] == ["/runs", "/health"]
    log.level = "error"
    log("request", level="warning", path="/x")
    assert len(lines(out)) == 2


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="not a log level"):
        JsonLog(io.StringIO(), level="loud")


def test_the_job_prunes_at_once_and_says_so_in_the_log() -> None:
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 40 * 86400))
    for index in range(3):
        write_record(
            RunRecord(
                id=f"20260101-00000{index}-aaaaaaaa",
                case="c",
                script="s.py",
                status="succeeded",
                started_at=old,
                finished_at=old,
            )
        )
    out = io.StringIO()
    job = RetentionJob(Policy(keep=1), JsonLog(out), interval=3600)
    job.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(lines(out)) < 2:
            time.sleep(0.02)
    finally:
        job.stop()
    on, pruned = lines(out)[:2]
    assert (on["event"], on["phase"], on["policy"]) == ("retention", "on", "beyond the newest 1")
    assert (pruned["phase"], pruned["removed"], pruned["kept"]) == ("pruned", 2, 1)
    assert [p.name for p in paths.runs_dir().iterdir()] == ["20260101-000002-aaaaaaaa"]
