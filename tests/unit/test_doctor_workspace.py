"""`roscoe doctor`'s workspace checks: mountinfo read right, FUSE without allow_other caught,
the run user's write tried the way a bind mount hands the folder over."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roscoe.cli.app import app
from roscoe.cli.context import CliState
from roscoe.diagnostics.mounts import Mount, mount_of, parse_mountinfo
from roscoe.diagnostics.workspace import try_write_as, workspace_facts
from roscoe.errors import EngineError

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/bucket rw,nosuid,relatime shared:5 - fuse.gcsfuse cases-bucket rw,user_id=1000
31 22 0:41 / /mnt/open rw,nosuid,nodev,relatime - fuse.s3fs s3fs rw,user_id=0,group_id=0,allow_other
32 22 0:42 / /mnt/root\\040only rw,nosuid,nodev - fuse.s3fs s3fs rw,user_id=0,group_id=0
33 22 0:43 / /mnt/bucket/inner rw - tmpfs tmpfs rw
garbage line without the separator
"""


@pytest.fixture
def mounts() -> list[Mount]:
    return parse_mountinfo(MOUNTINFO)


def test_mountinfo_fields_escapes_and_fuse_names(mounts: list[Mount]) -> None:
    assert [m.mount_point for m in mounts] == [
        "/",
        "/mnt/bucket",
        "/mnt/open",
        "/mnt/root only",
        "/mnt/bucket/inner",
    ]
    gcs = mounts[1]
    assert (gcs.fs_type, gcs.fuse, gcs.fuse_name, gcs.source) == (
        "fuse.gcsfuse",
        True,
        "gcsfuse",
        "cases-bucket",
    )
    assert (gcs.allow_other, gcs.mount_uid) == (False, 1000)
    assert mounts[2].allow_other is True
    assert mounts[0].fuse is False and mounts[0].fuse_name is None


def test_the_deepest_mount_above_a_path_wins(mounts: list[Mount]) -> None:
    assert mount_of("/mnt/bucket/ws/projects", mounts).mount_point == "/mnt/bucket"
    assert mount_of("/mnt/bucket/inner/x", mounts).mount_point == "/mnt/bucket/inner"
    assert mount_of("/mnt/bucketeer", mounts).mount_point == "/"
    assert mount_of("/mnt/root only/ws", mounts).mount_point == "/mnt/root only"


def test_who_may_enter_a_fuse_mount(mounts: list[Mount]) -> None:
    gcs, open_, root_only = mounts[1], mounts[2], mounts[3]
    assert gcs.readable_by(1000) and not gcs.readable_by(0)  # not even root
    assert open_.readable_by(0) and open_.readable_by(1000)
    assert root_only.readable_by(0) and not root_only.readable_by(1000)


def make_ws(root: Path) -> Path:
    (root / "projects" / "case-b").mkdir(parents=True)
    (root / "projects" / "case-a").mkdir()
    (root / "Tools").mkdir()
    return root


def by_name(facts) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {c.name: c for c in facts.checks}


def test_a_plain_workspace_passes(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    facts = workspace_facts(
        ws, "flag", "projects", "Tools", engine_uid=0, run_user=(os.getuid(), os.getgid())
    )
    checks = by_name(facts)
    assert all(c.status == "ok" for c in facts.checks), facts.checks
    assert "2 case folders" in checks["workspace"].detail
    assert facts.case_tried == "case-a" and facts.run_user_can_write is True
    assert list((ws / "projects" / "case-a").iterdir()) == []  # the probe file is gone


def test_missing_folders_are_named(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "Tools").mkdir(parents=True)
    facts = workspace_facts(ws, "flag", "projects", "Tools", engine_uid=0, run_user=(1, 1))
    check = by_name(facts)["workspace"]
    assert check.status == "fail"
    assert "has no projects/" in check.detail
    gone = workspace_facts(tmp_path / "nope", "env ROSCOE_WORKSPACE", "projects", "Tools",
                           engine_uid=0, run_user=(1, 1))  # fmt: skip
    assert by_name(gone)["workspace"].status == "fail"
    assert "does not exist" in by_name(gone)["workspace"].detail


def test_a_fuse_mount_of_another_user_without_allow_other_is_named(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    mounts = [
        Mount("/", "ext4", "/dev/sda1", ("rw",), ("rw",)),
        Mount(str(ws), "fuse.gcsfuse", "bucket", ("rw",), ("rw", "user_id=4321", "group_id=4321")),
    ]
    facts = workspace_facts(
        ws, "flag", "projects", "Tools", engine_uid=0, run_user=(1000, 1000), mounts=mounts
    )
    engine = by_name(facts)["workspace engine access"]
    assert engine.status == "fail"
    assert "uid 4321 without allow_other" in engine.detail
    assert "not even root" in engine.detail
    assert "-o allow_other" in engine.hint and "user_allow_other" in engine.hint
    assert "gcsfuse -o allow_other" in engine.hint
    fs = by_name(facts)["workspace file system"]
    assert "FUSE: gcsfuse" in fs.detail and "no allow_other" in fs.detail
    data = facts.to_json()
    assert data["engine_can_read"] is False
    assert data["file_system"]["allow_other"] is False
    assert data["file_system"]["mount_uid"] == 4321


def test_a_rootless_engine_reads_its_users_mount(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    mounts = [Mount(str(ws), "fuse.s3fs", "s3fs", ("rw",), ("rw", f"user_id={os.getuid()}"))]
    facts = workspace_facts(
        ws,
        "flag",
        "projects",
        "Tools",
        engine_uid=os.getuid(),
        run_user=(os.getuid(), os.getgid()),
        mounts=mounts,
    )
    assert by_name(facts)["workspace engine access"].status == "ok"
    assert facts.run_user_can_write is True


@pytest.mark.skipif(os.getuid() != 0, reason="becoming another user needs root")
def test_the_write_test_runs_as_the_run_user_from_the_folder_itself(tmp_path: Path) -> None:
    private = tmp_path / "private"
    case = private / "case"
    case.mkdir(parents=True)
    private.chmod(0o700)  # the run user cannot walk here, but a bind mount does not need to
    case.chmod(0o777)
    assert try_write_as(case, 1000, 1000) is None
    case.chmod(0o755)  # root's, not writable by uid 1000
    assert try_write_as(case, 1000, 1000) == "Permission denied"
    assert list(case.iterdir()) == []


@pytest.mark.skipif(os.getuid() != 0, reason="becoming another user needs root")
def test_a_case_the_run_user_cannot_write_fails_with_the_fix(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    facts = workspace_facts(ws, "flag", "projects", "Tools", engine_uid=0, run_user=(1000, 1000))
    check = by_name(facts)["workspace run user"]
    assert check.status == "fail"
    assert "uid 1000 (the runs' user) cannot write in case case-a: Permission denied" in (
        check.detail
    )
    assert "chown -R 1000:1000" in check.hint
    fuse = [Mount(str(ws), "fuse.s3fs", "s3fs", ("rw",), ("rw", "user_id=0", "allow_other"))]
    facts = workspace_facts(
        ws, "flag", "projects", "Tools", engine_uid=0, run_user=(1000, 1000), mounts=fuse
    )
    assert "uid=1000,gid=1000" in by_name(facts)["workspace run user"].hint


def test_doctor_json_holds_the_workspace_and_the_runs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(self: CliState) -> object:
        raise EngineError("no engine here", hint="start one")

    monkeypatch.setattr(CliState, "engine", no_engine)
    ws = make_ws(tmp_path / "ws")
    monkeypatch.setenv("ROSCOE_WORKSPACE", str(ws))
    monkeypatch.setenv("ROSCOE_RUNS_WARN_SIZE", "10")
    runs = tmp_path / "roscoe-data" / "runs" / "20260101-000000-aaaaaaaa"
    runs.mkdir(parents=True)
    (runs / "output.log").write_bytes(b"x" * 100)
    done = CliRunner().invoke(app, ["doctor", "--json"])
    data = json.loads(done.stdout)
    assert data["workspace"]["path"] == str(ws)
    assert data["workspace"]["has_projects"] and data["workspace"]["has_tools"]
    assert data["workspace"]["file_system"]["mount_point"]
    assert data["runs"] == {
        "path": str(runs.parent),
        "runs": 1,
        "bytes": 100,
        "warn_bytes": 10,
    }
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["runs folder"]["status"] == "warn"
    assert "roscoe runs prune" in checks["runs folder"]["hint"]
    assert {"workspace", "workspace file system", "workspace engine access"} <= set(checks)


@pytest.mark.skipif(os.getuid() != 0, reason="becoming another user needs root")
def test_tools_the_run_user_cannot_read_fail_too(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    for case in (ws / "projects").iterdir():
        case.chmod(0o777)
    (ws / "Tools").chmod(0o700)
    facts = workspace_facts(ws, "flag", "projects", "Tools", engine_uid=0, run_user=(1000, 1000))
    check = by_name(facts)["workspace run user"]
    assert check.status == "fail"
    assert check.detail == "uid 1000 (the runs' user) cannot read Tools/: Permission denied"
    assert (facts.run_user_can_write, facts.run_user_can_read_tools) == (True, False)
    (ws / "Tools").chmod(0o755)
    facts = workspace_facts(ws, "flag", "projects", "Tools", engine_uid=0, run_user=(1000, 1000))
    assert by_name(facts)["workspace run user"].status == "ok"
