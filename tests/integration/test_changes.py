"""What a run changed, on real Docker and Podman: the record's `changes` against the files.

Each test runs the real CLI in a subprocess and compares the record with the case folder as
the script left it: every listed sha256 is the file's, nothing unchanged is listed. The CLI
tests run on rootless Podman too, as its user (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import DEMO_CASE, LiveService, start_service
from test_run_support import (
    CASE,
    leftovers,
    make_workspace,
    record_of,
    run_cli,
    run_ids,
    run_uid,
)

from helpers import ROOTLESS, roscoe
from helpers_infra import rootless_podman_settings

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.engine

BINARY = bytes(range(256)) * 64 + b"\x00\xff\xfe"

CHANGER = r"""
import os, pathlib
p = pathlib.Path
p("input.txt").write_text("hello, changed\n")               # modified
p("same.txt").write_text("the same words\n")                 # rewritten, same content
os.remove("gone.txt")                                         # deleted
os.rename("old-name.txt", "new-name.txt")                     # renamed: deleted + created
os.makedirs("reports/2026/q1")                                # nested folders
p("reports/2026/q1/summary.md").write_text("# summary\n")
p("reports/2026/q1/chart.bin").write_bytes(bytes(range(256)) * 64 + b"\x00\xff\xfe")
p("photo.bin").write_bytes(p("photo.bin").read_bytes()[::-1])  # binary, modified
os.chmod("script-output.sh", 0o755)                           # permissions only
"""
NOTHING = "import os\nprint(sorted(os.listdir('.')))\n"
SHOW_ENV = "import os\nprint(os.environ.get('API_TOKEN', '')[:3])\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["docker", "podman", ROOTLESS])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The CLI tests here run on rootless Podman too; the service's test overrides this."""
    return str(request.param)


@pytest.fixture
def ws(tmp_path: Path, engine_name: str) -> Path:
    root = make_workspace(
        tmp_path / "ws", {"changer.py": CHANGER, "nothing.py": NOTHING, "env.py": SHOW_ENV}
    )
    case = root / "projects" / CASE
    (case / "same.txt").write_text("the same words\n")
    (case / "gone.txt").write_text("to be deleted\n")
    (case / "old-name.txt").write_text("renamed\n")
    (case / "photo.bin").write_bytes(BINARY)
    (case / "script-output.sh").write_text("echo hi\n")
    (case / "untouched").mkdir()
    (case / "untouched" / "keep.txt").write_text("keep\n")
    # The script runs as uid 1000 under a root roscoe (as the user under rootless Podman): it
    # must own what it chmods.
    uid = run_uid(engine_name)
    owner = (uid, uid) if uid != os.getuid() else None
    for folder, dirs, files in os.walk(case):
        for name in [*dirs, *files]:
            os.chmod(Path(folder) / name, 0o777 if name in dirs else 0o666)
            if owner:
                os.chown(Path(folder) / name, *owner)
    return root


@pytest.fixture
def clean(engine: Any, isolated_dirs: Path) -> Iterator[None]:
    yield
    assert leftovers(engine, isolated_dirs) == []


def listed(record: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {item["path"]: item for item in record["changes"][key]}


def the_record(isolated_dirs: Path) -> dict[str, Any]:
    (run_id,) = run_ids(isolated_dirs)
    return record_of(isolated_dirs, run_id)


def test_every_kind_of_change_is_recorded_with_the_files_hashes(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path, engine_name: str
) -> None:
    case = ws / "projects" / CASE
    done = run_cli(ws, base_image, CASE, "changer.py")
    assert done.returncode == 0, done.stderr
    record = the_record(isolated_dirs)
    changes = record["changes"]
    assert changes["tracked"] is True
    created, modified, deleted = (listed(record, k) for k in ("created", "modified", "deleted"))
    assert sorted(created) == [
        "new-name.txt",
        "reports",
        "reports/2026",
        "reports/2026/q1",
        "reports/2026/q1/chart.bin",
        "reports/2026/q1/summary.md",
    ]
    assert sorted(modified) == ["input.txt", "photo.bin", "script-output.sh"]
    assert sorted(deleted) == ["gone.txt", "old-name.txt"]
    # Every hash is the file's as the script left it; sizes too.
    for path, item in {**created, **modified}.items():
        if item["type"] == "file":
            data = (case / path).read_bytes()
            assert (item["sha256"], item["size"]) == (sha(data), len(data)), path
    assert created["reports/2026/q1/chart.bin"]["sha256"] == sha(BINARY)
    assert modified["photo.bin"]["sha256_before"] == sha(BINARY)
    assert modified["input.txt"]["sha256_before"] == sha(b"hello\n")
    assert modified["script-output.sh"]["mode_before"] == "0666"
    assert modified["script-output.sh"]["mode"] == "0755"
    assert modified["script-output.sh"]["sha256"] == modified["script-output.sh"]["sha256_before"]
    assert (deleted["gone.txt"]["size"], deleted["gone.txt"]["sha256"]) == (
        14,
        sha(b"to be deleted\n"),
    )
    assert created["new-name.txt"]["sha256"] == deleted["old-name.txt"]["sha256"]
    # Who, with what: the user by name, the script as it was run.
    rootless = rootless_podman_settings() if engine_name == ROOTLESS else None
    user = rootless.user if rootless else pwd.getpwuid(os.getuid()).pw_name
    assert record["requested_by"] == f"cli:{user}"
    assert record["script_sha256"] == sha((ws / "Tools" / "changer.py").read_bytes())


def test_a_run_that_changes_nothing_lists_nothing(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    for _ in range(2):  # the second run takes its hashes from the cache the first left
        done = run_cli(ws, base_image, CASE, "nothing.py")
        assert done.returncode == 0, done.stderr
    for run_id in run_ids(isolated_dirs):
        changes = record_of(isolated_dirs, run_id)["changes"]
        assert changes == {"tracked": True, "created": [], "modified": [], "deleted": []}


def test_env_names_are_recorded_never_their_values(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    secret = "s3cr3t-value-for-the-record-test"
    done = run_cli(ws, base_image, "-e", f"API_TOKEN={secret}", "-e", "PLAIN=x", CASE, "env.py")
    assert done.returncode == 0, done.stderr
    record = the_record(isolated_dirs)
    assert record["env_names"] == ["API_TOKEN", "PLAIN"]
    for folder, _dirs, files in os.walk(isolated_dirs):
        for name in files:
            assert secret.encode() not in (Path(folder) / name).read_bytes(), name


def test_tracking_turned_off_is_said_in_the_record(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    done = run_cli(ws, base_image, "--no-track-changes", CASE, "changer.py")
    assert done.returncode == 0, done.stderr
    done = roscoe(
        "run", "--workspace", str(ws), "--image", base_image, CASE, "nothing.py",
        env={"ROSCOE_TRACK_CHANGES": "false"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for run_id in run_ids(isolated_dirs):
        changes = record_of(isolated_dirs, run_id)["changes"]
        assert changes["tracked"] is False
        assert "turned off" in changes["reason"]


def test_runs_show_and_list_by_case(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    done = run_cli(ws, base_image, CASE, "changer.py")
    assert done.returncode == 0, done.stderr
    (run_id,) = run_ids(isolated_dirs)
    shown = roscoe("runs", "show", run_id, env={"COLUMNS": "200"}).stdout.decode()
    for line in (
        "+ reports/2026/q1/chart.bin (16.0 KiB)",
        "~ input.txt (6 B -> 15 B)",
        "~ script-output.sh (8 B, mode 0666 -> 0755)",
        "- gone.txt (14 B)",
    ):
        assert line in shown, shown
    assert "same.txt" not in shown
    as_json = json.loads(roscoe("runs", "show", run_id, "--json").stdout)
    assert as_json["changes"]["tracked"] is True
    mine = json.loads(roscoe("runs", "list", "--case", CASE, "--json").stdout)
    assert [r["id"] for r in mine] == [run_id]
    assert json.loads(roscoe("runs", "list", "--case", "other", "--json").stdout) == []


@pytest.mark.image
@pytest.mark.parametrize("engine_name", ["docker", "podman"], indirect=True)
def test_a_run_through_the_service_records_its_changes_and_the_token_name(
    start_service: Any,
) -> None:
    live: LiveService = start_service()
    (live.workspace / "Tools" / "note.py").write_text(
        "from pathlib import Path\nPath('service-note.txt').write_text('from the service\\n')\n"
    )
    answer = live.post_run({"case": DEMO_CASE, "script": "note.py"})
    assert answer.status == 200, answer.body
    record = answer.json()
    assert record["requested_by"] == "admin"
    (created,) = record["changes"]["created"]
    written = live.workspace / "projects" / DEMO_CASE / "service-note.txt"
    assert (created["path"], created["sha256"]) == ("service-note.txt", sha(written.read_bytes()))
    assert record["changes"]["modified"] == record["changes"]["deleted"] == []
