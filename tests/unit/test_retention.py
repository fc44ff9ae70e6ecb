"""`roscoe runs prune` and the retention core: which runs go, which never do, what it says."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import roscoe
from roscoe.cli.app import app
from roscoe.config import paths
from roscoe.config.settings import Settings
from roscoe.errors import UsageError
from roscoe.runs.records import RunRecord, write_record
from roscoe.runs.retention import Policy, plan, policy_from_settings, prune, scan

DAY = 86400.0
NOW = time.time()


def iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when))


def make_run(run_id: str, days_ago: float, status: str = "succeeded", size: int = 1000) -> Path:
    when = NOW - days_ago * DAY
    record = RunRecord(
        id=run_id,
        case="c",
        script="s.py",
        status=status,
        started_at=iso(when - 5),
        finished_at=None if status == "running" else iso(when),
    )
    write_record(record)
    folder = paths.run_dir(run_id)
    (folder / "output.log").write_bytes(b"x" * size)
    return folder


@pytest.fixture
def runs() -> dict[str, Path]:
    """Five finished runs 1..50 days old, one still running (60 days), of growing sizes."""
    made = {
        "r50": make_run("20260101-000000-00000050", 50, size=5000),
        "r20": make_run("20260101-000000-00000020", 20, status="failed", size=4000),
        "r10": make_run("20260101-000000-00000010", 10, size=3000),
        "r5": make_run("20260101-000000-00000005", 5, status="timed_out", size=2000),
        "r1": make_run("20260101-000000-00000001", 1, size=1000),
        "live": make_run("20260101-000000-0000live", 60, status="running", size=100),
    }
    return made


def removed_ids(result_removed: list) -> set[str]:  # type: ignore[type-arg]
    return {item.id[-4:] for item in result_removed}


def test_older_than_removes_only_finished_runs_past_the_age(runs) -> None:
    result = prune(Policy(older_than_s=15 * DAY, older_than_text="15d"))
    assert removed_ids(result.removed) == {"0050", "0020"}
    assert all("ended more than 15d ago" in item.reason for item in result.removed)
    assert not runs["r50"].exists() and not runs["r20"].exists()
    assert runs["live"].exists()  # 60 days old, but its record says running
    assert result.kept == 4 and result.kept_running == 1
    assert result.freed_bytes == sum(item.bytes for item in result.removed)
    assert result.freed_bytes > 9000


def test_keep_counts_finished_runs_newest_first(runs) -> None:
    result = prune(Policy(keep=2))
    assert removed_ids(result.removed) == {"0050", "0020", "0010"}
    assert {p.name[-4:] for p in paths.runs_dir().iterdir()} == {"0005", "0001", "live"}


def test_keep_zero_removes_every_finished_run_but_no_running_one(runs) -> None:
    prune(Policy(keep=0))
    assert [p.name for p in paths.runs_dir().iterdir()] == [runs["live"].name]


def test_max_size_removes_the_oldest_until_the_folder_fits(runs) -> None:
    total = sum(f.bytes for f in scan())
    limit = total - 6000  # the two oldest finished (5000 + 4000 + records) must go
    result = prune(Policy(max_size=limit, max_size_text=str(limit)))
    assert removed_ids(result.removed) == {"0050", "0020"}
    assert result.remaining_bytes <= limit
    assert result.remaining_bytes == sum(f.bytes for f in scan())


def test_every_limit_holds_afterwards(runs) -> None:
    policy = Policy(older_than_s=15 * DAY, older_than_text="15d", keep=4)
    chosen, kept = plan(scan(), policy)
    assert {f.id[-4:]: why for f, why in chosen} == {
        "0050": "beyond the newest 4",
        "0020": "ended more than 15d ago",
    }
    assert len(kept) == 4
    policy = Policy(older_than_s=15 * DAY, older_than_text="15d", keep=2, max_size=1)
    chosen, kept = plan(scan(), policy)
    assert [f.id[-4:] for f, _ in chosen] == ["0050", "0020", "0010", "0005", "0001"]
    assert [f.id[-4:] for f in kept] == ["live"]


def test_dry_run_removes_nothing_and_says_the_same(runs) -> None:
    before = sorted(p.name for p in paths.runs_dir().iterdir())
    dry = prune(Policy(keep=1), dry_run=True)
    assert sorted(p.name for p in paths.runs_dir().iterdir()) == before
    real = prune(Policy(keep=1))
    assert [i.id for i in dry.removed] == [i.id for i in real.removed]
    assert dry.freed_bytes == real.freed_bytes


def test_a_folder_without_a_record_is_left_while_it_may_be_a_run_being_set_up() -> None:
    fresh = paths.ensure_runs_dir() / "20260101-000000-fresh000"
    fresh.mkdir()
    old = paths.runs_dir() / "20260101-000000-broken00"
    old.mkdir()
    (old / "run.json").write_text("{not json")
    os.utime(old, (NOW - 2 * DAY, NOW - 2 * DAY))
    result = prune(Policy(keep=0))
    assert fresh.exists()
    assert not old.exists()
    assert [item.status for item in result.removed] == [None]


def test_malformed_records_are_judged_by_what_can_be_read(runs) -> None:
    odd = paths.runs_dir() / "20260101-000000-odd00000"
    odd.mkdir()
    (odd / "run.json").write_text(json.dumps({"status": 7, "started_at": 12, "finished_at": []}))
    os.utime(odd, (NOW - 90 * DAY, NOW - 90 * DAY))
    result = prune(Policy(older_than_s=80 * DAY, older_than_text="80d"))
    assert [item.id for item in result.removed] == [odd.name]


def test_an_interrupted_prune_is_finished_by_the_next(runs) -> None:
    aside = paths.runs_dir() / ".pruning-20260101-000000-00000099.123"
    (aside / "deep").mkdir(parents=True)
    (aside / "deep" / "output.log").write_bytes(b"x" * 10)
    prune(Policy(keep=10))
    assert not aside.exists()
    assert len(scan()) == 6  # nothing else went


def test_no_policy_is_exit_2_with_the_options_named() -> None:
    with pytest.raises(UsageError) as caught:
        prune(Policy())
    assert "--older-than" in (caught.value.hint or "")


def test_options_replace_the_configured_retention_as_a_whole() -> None:
    settings = Settings(env={"ROSCOE_RUNS_KEEP": "5", "ROSCOE_RUNS_OLDER_THAN": "30d"})
    configured = policy_from_settings(settings)
    assert (configured.keep, configured.older_than_s) == (5, 30 * DAY)
    given = policy_from_settings(settings, max_size="1g")
    assert (given.keep, given.older_than_s, given.max_size) == (None, None, 1 << 30)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--older-than", "3x"], "not a duration"),
        (["--older-than", "0d"], "longer than 0"),
        (["--max-size", "lots"], "not a size"),
        (["--keep", "-1"], "-1"),
    ],
)
def test_bad_options_are_exit_2(args: list[str], needle: str) -> None:
    done = roscoe("runs", "prune", *args)
    assert done.returncode == 2
    assert needle in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()


def test_cli_says_what_it_freed_and_json_has_it_all(runs) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["runs", "prune", "--older-than", "15d", "--dry-run"])
    assert done.exit_code == 0, done.output
    assert "would remove 20260101-000000-00000050 (succeeded" in done.output
    assert "would remove 2 runs, would free" in done.output
    assert "1 of them running" in done.output
    done = runner.invoke(app, ["runs", "prune", "--keep", "1", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert set(data) == {
        "dry_run",
        "policy",
        "removed",
        "freed_bytes",
        "kept",
        "kept_running",
        "remaining_bytes",
        "failed",
    }
    assert data["policy"] == {
        "older_than": None,
        "keep": 1,
        "max_size": None,
        "max_size_bytes": None,
    }
    assert len(data["removed"]) == 4
    assert set(data["removed"][0]) == {"id", "status", "ended_at", "bytes", "reason"}
    assert data["freed_bytes"] == sum(item["bytes"] for item in data["removed"])
    assert data["kept"] == 2 and data["kept_running"] == 1


def test_cli_without_options_uses_the_config_file(runs) -> None:
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[runs]\nkeep = 4\n")
    done = CliRunner().invoke(app, ["runs", "prune"])
    assert done.exit_code == 0, done.output
    assert "removed 1 runs" in done.output
    assert not runs["r50"].exists()
