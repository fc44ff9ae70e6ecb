"""Previews without an engine: the copy, the changes the "script" (the test) makes to it, and
landing them in the case, all or none; and the service's apply and discard endpoints."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_fakes import AUTH, FakeBackend, backend, log_stream, make_service

from roscoe.access import tokens
from roscoe.config import paths
from roscoe.errors import OperationFailed, UsageError
from roscoe.runs import changes, preview
from roscoe.runs.landing import Conflict, apply_changes
from roscoe.runs.outcome import RunStatus
from roscoe.runs.records import RunRecord, load_run, make_run_dir, write_record
from roscoe.runs.tracking import Tracker
from roscoe.service.app import create_app

__all__ = ["backend", "log_stream"]  # fixtures, imported so pytest finds them here

Script = Callable[[Path], None]


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under root: (kind and mode, content or target), never following links."""
    found: dict[str, tuple[str, str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            mode = f"{stat.S_IFMT(info.st_mode):o}:{stat.S_IMODE(info.st_mode):o}"
            if path.is_symlink():
                found[key] = (mode, os.readlink(path))
            elif path.is_dir():
                found[key] = (mode, "")
            else:
                found[key] = (mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture
def case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws" / "projects" / "c"
    (root / "docs" / "old").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "keep.txt").write_text("untouched\n")
    (root / "scan.bin").write_bytes(bytes(range(256)) * 8)
    (root / "docs" / "note.md").write_text("# note\n")
    (root / "docs" / "old" / "stale.txt").write_text("stale\n")
    (root / "run.sh").write_text("echo hi\n")
    monkeypatch.setattr(changes, "RACY_NS", 0)
    return root


def preview_run(case: Path, script: Script, status: str = "succeeded") -> RunRecord:
    """What execute() does for a preview, with `script` standing in for the container."""
    record = RunRecord(id="20260101-000000-0000abcd", case="c", script="s.py", preview=True)
    where = make_run_dir(record.id)
    tracker = Tracker(case, str(case))
    tracker.preview(where / preview.PREVIEW_DIR)
    tracker.ready()
    script(where / preview.PREVIEW_DIR)
    tracker.end()
    record.status = RunStatus(status)
    record.changes = tracker.result()
    preview.finish(record, tracker, str(case))
    write_record(record)
    return record


def everything(data: Path) -> None:
    (data / "a.txt").write_text("alpha, edited\n")
    (data / "scan.bin").write_bytes(bytes(range(255, -1, -1)) * 8)
    (data / "docs" / "note.md").rename(data / "docs" / "renamed.md")
    (data / "docs" / "old" / "stale.txt").unlink()
    (data / "docs" / "old").rmdir()
    (data / "out" / "deep").mkdir(parents=True)
    (data / "out" / "deep" / "r.bin").write_bytes(os.urandom(3000))
    (data / "run.sh").chmod(0o755)
    (data / "link").symlink_to("a.txt")


def test_the_case_is_untouched_and_apply_lands_exactly_the_copy(case: Path) -> None:
    before = tree(case)
    record = preview_run(case, everything)
    assert tree(case) == before  # byte for byte, modes too
    assert (record.preview, record.preview_state) == (True, "pending")
    copy = paths.run_dir(record.id) / preview.PREVIEW_DIR
    expected = tree(copy)
    applied, count = preview.apply_run(record.id, "cli:tester")
    assert count == sum(len(record.changes[k]) for k in ("created", "modified", "deleted"))
    assert tree(case) == expected
    assert (applied.preview_state, applied.applied_by) == ("applied", "cli:tester")
    assert applied.applied_at and load_run(record.id).preview_state == "applied"
    assert not copy.exists()
    with pytest.raises(UsageError, match="was applied at") as again:
        preview.apply_run(record.id, "cli:tester")
    assert again.value.hint == (
        f"its changes are in the case now; `roscoe runs show {record.id}` lists them"
    )


def test_a_conflicting_edit_refuses_and_changes_nothing(case: Path) -> None:
    record = preview_run(case, everything)
    (case / "a.txt").write_text("edited by a person meanwhile\n")
    before = tree(case)
    with pytest.raises(Conflict) as refused:
        preview.apply_run(record.id, "cli:tester")
    assert refused.value.conflicts == ["a.txt (changed in the case since)"]
    assert "a.txt" in refused.value.message and refused.value.exit_code == 1
    assert tree(case) == before
    assert load_run(record.id).preview_state == "pending"


@pytest.mark.parametrize(
    ("meanwhile", "said"),
    [
        (lambda c: (c / "out").mkdir(), None),  # the same new folder: no conflict
        (lambda c: (c / "link").write_text("x"), "link (made in the case since)"),
        (lambda c: (c / "run.sh").unlink(), "run.sh (gone from the case since)"),
        (
            lambda c: (c / "docs" / "old" / "new.txt").write_text("x"),
            "docs/old/new.txt (made in the case since, in a folder the preview removes)",
        ),
    ],
)
def test_every_kind_of_conflict(
    case: Path, meanwhile: Callable[[Path], Any], said: str | None
) -> None:
    record = preview_run(case, everything)
    meanwhile(case)
    if said is None:
        preview.apply_run(record.id, "cli:tester")
        return
    before = tree(case)
    with pytest.raises(Conflict) as refused:
        preview.apply_run(record.id, "cli:tester")
    assert said in refused.value.conflicts
    assert tree(case) == before


def test_a_symlink_swapped_in_leads_no_write_outside(case: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    record = preview_run(case, lambda data: (data / "docs" / "added.txt").write_text("x"))
    (case / "docs").rename(case / "docs-moved")
    (case / "docs").symlink_to(outside)
    with pytest.raises(Conflict):
        preview.apply_run(record.id, "cli:tester")
    assert list(outside.iterdir()) == []


def test_a_same_content_check_survives_a_touch(case: Path) -> None:
    record = preview_run(case, everything)
    os.utime(case / "a.txt", (1, 1))  # the stat moved, the content did not
    preview.apply_run(record.id, "cli:tester")
    assert (case / "a.txt").read_text() == "alpha, edited\n"


def test_discard_leaves_no_trace(case: Path) -> None:
    before = tree(case)
    record = preview_run(case, everything)
    dropped = preview.discard_run(record.id, "cli:tester")
    assert (dropped.preview_state, dropped.discarded_by) == ("discarded", "cli:tester")
    assert tree(case) == before
    assert not (paths.run_dir(record.id) / preview.PREVIEW_DIR).exists()
    with pytest.raises(UsageError, match="discarded"):
        preview.apply_run(record.id, "cli:tester")


@pytest.mark.parametrize("status", ["timed_out", "interrupted", "cancelled", "oom_killed"])
def test_a_stopped_preview_keeps_nothing(case: Path, status: str) -> None:
    before = tree(case)
    record = preview_run(case, everything, status=status)
    assert (record.preview_state, record.discarded_by) == ("discarded", "roscoe")
    assert not (paths.run_dir(record.id) / preview.PREVIEW_DIR).exists()
    with pytest.raises(UsageError, match=f"the run ended {status}"):
        preview.apply_run(record.id, "cli:tester")
    assert tree(case) == before


def test_a_tampered_copy_is_refused(case: Path) -> None:
    record = preview_run(case, everything)
    (paths.run_dir(record.id) / preview.PREVIEW_DIR / "a.txt").write_text("not what ran\n")
    before = tree(case)
    with pytest.raises(OperationFailed, match="not what the run recorded"):
        preview.apply_run(record.id, "cli:tester")
    assert tree(case) == before


def test_unsafe_paths_in_a_record_are_refused(case: Path, tmp_path: Path) -> None:
    found = {"created": [{"path": "../escape.txt", "type": "file", "sha256": "x"}]}
    with pytest.raises(OperationFailed, match="unsafe path"):
        apply_changes(case, tmp_path, found, {}, "r")


def test_not_a_preview_is_exit_2() -> None:
    write_record(RunRecord(id="20260101-000000-0000abcd", case="c", script="s.py"))
    with pytest.raises(UsageError, match="was not a preview"):
        preview.apply_run("20260101-000000-0000abcd", "cli:tester")
    with pytest.raises(UsageError, match="no run with id"):
        preview.discard_run("20260101-000000-ffffffff", "cli:tester")


# -- the service's endpoints -------------------------------------------------------------------
@pytest.fixture
def client(backend: FakeBackend, log_stream: io.StringIO) -> Iterator[TestClient]:
    service = make_service(
        backend, log_stream, concurrency=2, queue=2, tokens_file=paths.tokens_file()
    )
    with TestClient(create_app(service)) as test_client:
        yield test_client


def pending(backend: FakeBackend, client: TestClient, case: str) -> str:
    body = json.dumps({"case": case, "script": "s.py", "preview": True}).encode()
    answer = client.post("/runs", content=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert backend.runs[-1].preview is True
    run_id = answer.json()["id"]
    backend.records[run_id]["preview_state"] = "pending"
    return run_id


def test_apply_takes_the_admin_or_a_can_apply_token(
    backend: FakeBackend, client: TestClient
) -> None:
    plain = tokens.create("plain", cases=["a"]).token
    applier = tokens.create("applier", cases=["a"], can_apply=True).token
    elsewhere = tokens.create("elsewhere", cases=["b"], can_apply=True).token
    run_id = pending(backend, client, "a")
    bearer = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    refused = client.post(f"/runs/{run_id}/apply", headers=bearer(plain))
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("token 'plain' may not apply previews")
    assert client.post(f"/runs/{run_id}/apply", headers=bearer(elsewhere)).status_code == 404
    applied = client.post(f"/runs/{run_id}/apply", headers=bearer(applier))
    assert applied.status_code == 200
    assert (applied.json()["preview_state"], applied.json()["applied_by"]) == (
        "applied",
        "applier",
    )
    again = client.post(f"/runs/{run_id}/apply", headers=AUTH)
    assert again.status_code == 409


def test_discard_takes_any_token_of_the_case(backend: FakeBackend, client: TestClient) -> None:
    plain = tokens.create("plain", cases=["a"]).token
    run_id = pending(backend, client, "a")
    answer = client.post(f"/runs/{run_id}/discard", headers={"Authorization": f"Bearer {plain}"})
    assert answer.status_code == 200
    assert answer.json()["preview_state"] == "discarded"
    assert client.post("/runs/nope-1/discard", headers=AUTH).status_code == 404
