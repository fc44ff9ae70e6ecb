"""Run records: round trip, atomic writes, listing, output tails, id checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roscoe.config import paths
from roscoe.errors import UsageError
from roscoe.runs import records
from roscoe.runs.records import RunRecord

CONTRACT_KEYS = {
    "id",
    "case",
    "script",
    "args",
    "image",
    "image_digest",
    "engine",
    "isolation",
    "status",
    "exit_code",
    "started_at",
    "finished_at",
    "duration_s",
    "timed_out",
    "output_file",
    "output_bytes",
    "saved_output_truncated",
    "message",
    "requested_by",
    "script_sha256",
    "env_names",
    "changes",
    "preview",
    "preview_state",
    "applied_at",
    "applied_by",
    "discarded_at",
    "discarded_by",
    "peak_memory_bytes",
    "cpu_user_s",
    "cpu_system_s",
}


def _record(run_id: str, started: str, **extra: Any) -> RunRecord:
    return RunRecord(
        id=run_id,
        case="c",
        script="s.py",
        args=["a b", "--x"],
        image="img",
        started_at=started,
        **extra,
    )


def test_to_json_keys_are_the_contract() -> None:
    assert set(_record("r1", "t").to_json()) == CONTRACT_KEYS


def test_round_trip_through_disk(isolated_dirs: Path) -> None:
    record = _record("20260101-000000-aaaaaaaa", "2026-01-01T00:00:00.000Z", status="failed")
    record.exit_code = 3
    where = records.write_record(record)
    assert where == paths.runs_dir() / record.id / "run.json"
    assert records.load_run(record.id) == record
    assert json.loads(where.read_text())["args"] == ["a b", "--x"]
    assert not list(where.parent.glob(".run-*"))  # the temp file was renamed away


def test_unknown_keys_in_a_record_are_ignored(isolated_dirs: Path) -> None:
    where = paths.run_dir("r2")
    where.mkdir(parents=True)
    data = _record("r2", "t").to_json() | {"added_later": 1}
    (where / "run.json").write_text(json.dumps(data))
    assert records.load_run("r2").id == "r2"


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", "-x", "x" * 101, "a b"])
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        records.load_run(bad)
    assert caught.value.exit_code == 2


def test_unknown_and_unreadable_ids(isolated_dirs: Path) -> None:
    with pytest.raises(UsageError, match="no run with id"):
        records.load_run("20260101-000000-00000000")
    broken = paths.run_dir("broken")
    broken.mkdir(parents=True)
    (broken / "run.json").write_text("{not json")
    with pytest.raises(UsageError, match="unreadable"):
        records.load_run("broken")


def test_list_runs_newest_first_with_limit(isolated_dirs: Path) -> None:
    assert records.list_runs(5) == []
    for n, started in enumerate(["2026-01-02", "2026-01-03", "2026-01-01"]):
        records.write_record(_record(f"run-{n}", started))
    broken = paths.run_dir("run-broken")
    broken.mkdir(parents=True)
    (broken / "run.json").write_text("[]")
    assert [r.id for r in records.list_runs(10)] == ["run-1", "run-0", "run-2"]
    assert [r.id for r in records.list_runs(1)] == ["run-1"]


def test_read_output_whole_and_tail(isolated_dirs: Path) -> None:
    record = _record("out", "t")
    records.write_record(record)
    payload = bytes(range(256)) * 10
    (paths.run_dir("out") / "output.log").write_bytes(payload)
    assert records.read_output("out") == (payload, False)
    assert records.read_output("out", tail_bytes=100) == (payload[-100:], True)
    assert records.read_output("out", tail_bytes=10_000) == (payload, False)


def test_output_is_always_output_log_never_a_path_from_the_record(
    isolated_dirs: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not yours")
    records.write_record(_record("evil", "t", output_file=str(secret)))
    assert records.read_output("evil") == (b"", False)  # no output.log: nothing, not the file
    records.write_record(_record("rel", "t", output_file="../evil/run.json"))
    (paths.run_dir("rel") / "output.log").write_bytes(b"the real output")
    assert records.read_output("rel") == (b"the real output", False)


def test_records_and_their_folders_are_private(isolated_dirs: Path) -> None:
    # A fresh data dir, created with a permissive umask, and one that already exists 0755.
    isolated_dirs.mkdir(parents=True, exist_ok=True)
    isolated_dirs.chmod(0o755)
    records.write_record(_record("priv", "t"))
    assert _mode(isolated_dirs) == 0o700
    assert _mode(paths.runs_dir()) == 0o700
    assert _mode(paths.run_dir("priv")) == 0o700
    assert _mode(paths.run_dir("priv") / "run.json") == 0o600


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {records.new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(records.check_run_id(i) == i for i in ids)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"id": "bad", "started_at": 12}, "'case' is missing"),
        ({"id": "bad", "case": "c", "script": "s.py", "started_at": 12}, "'started_at' is 12"),
        ({"id": "bad", "case": "c", "script": "s.py", "args": "a b"}, "'args' is"),
        ({"id": "bad", "case": "c", "script": "s.py", "exit_code": True}, "'exit_code' is true"),
        ({"id": "bad", "case": ["c"], "script": "s.py"}, "'case' is"),
        ({"id": "other", "case": "c", "script": "s.py"}, "it says it is run 'other'"),
    ],
)
def test_a_malformed_record_is_a_usage_error_naming_the_field(
    isolated_dirs: Path, data: dict[str, object], says: str
) -> None:
    where = paths.run_dir("bad")
    where.mkdir(parents=True)
    (where / "run.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match="malformed") as caught:
        records.load_run("bad")
    assert says in caught.value.message


def test_one_malformed_record_is_skipped_and_said_never_the_listing_down(
    isolated_dirs: Path,
) -> None:
    records.write_record(_record("run-good", "2026-01-02"))
    for run_id, data in {
        "run-number": {"id": "run-number", "case": "c", "script": "s", "started_at": 12},
        "run-partial": {"id": "run-partial", "started_at": "2026-01-03"},
    }.items():
        paths.run_dir(run_id).mkdir(parents=True)
        (paths.run_dir(run_id) / "run.json").write_text(json.dumps(data))
    paths.run_dir("run-being-created").mkdir()  # no run.json yet: nothing to say
    listing = records.scan_runs(10)
    assert [r.id for r in listing.runs] == ["run-good"]
    assert sorted(listing.skipped) == [
        "the record of run 'run-number' is malformed: 'started_at' is 12, not str | None",
        "the record of run 'run-partial' is malformed: 'case' is missing",
    ]
    assert [r.id for r in records.list_runs(10)] == ["run-good"]
