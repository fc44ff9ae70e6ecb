"""A workspace in a storage bucket mounted with FUSE (s3fs on an S3 API on loopback), on real
Docker and Podman: runs through the CLI and through the service read their case, write files
and folders that land in the bucket (checked through the S3 API), see only their own case,
and the inventory demo works there. `roscoe doctor` finds a mount without allow_other.

The bucket and its mounts come from scripts/engines.sh and the fixtures in conftest.py.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import roscoe
from helpers_infra import BucketWorkspace, FuseMount, bucket_mounted
from roscoe.config import paths

pytestmark = pytest.mark.engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workspace"
OBJECT_DEADLINE_S = 30.0

# Reads its case, writes a file and nested folders, and looks for anything of another case.
WRITER = """\
import json, os, sys
meta = json.load(open("/data/metadata.json"))
os.makedirs("/data/results/nested/deeper", exist_ok=True)
with open("/data/results/summary.txt", "w") as out:
    out.write(f"case {meta.get('case_id', '?')} read by {os.getuid()}\\n")
with open("/data/results/nested/deeper/leaf.txt", "w") as out:
    out.write("leaf\\n")
seen = []
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    seen += [os.path.join(top, f) for f in files if f == "only-in-other-case.txt"]
report = {"data": sorted(os.listdir("/data")), "other": seen, "tools": os.listdir("/tools")}
print(json.dumps(report))
"""


def fill(workspace: Path) -> None:
    """The example workspace, a writer script and a second case, copied into the bucket."""
    shutil.copytree(EXAMPLES / "projects" / "demo-case", workspace / "projects" / "demo-case")
    shutil.copy(EXAMPLES / "Tools" / "create_file_inventory.py", workspace / "Tools")
    (workspace / "Tools" / "writer.py").write_text(WRITER)
    other = workspace / "projects" / "other-case"
    other.mkdir()
    (other / "only-in-other-case.txt").write_text("not for demo-case's runs\n")


def expected_inventory() -> dict[str, str]:
    case = EXAMPLES / "projects" / "demo-case"
    return {
        str(path.relative_to(case)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in case.rglob("*")
        if path.is_file()
    }


def wait_for_keys(bucket: BucketWorkspace, *keys: str) -> None:
    wanted = {bucket.prefix + key for key in keys}
    end = time.monotonic() + OBJECT_DEADLINE_S
    while not wanted <= set(found := bucket.s3.keys(bucket.prefix)):
        assert time.monotonic() < end, f"missing objects {wanted - set(found)}; keys: {found}"
        time.sleep(0.2)


def check_writer_output(bucket: BucketWorkspace, text: str) -> None:
    report = json.loads(text.strip().splitlines()[-1])
    assert "metadata.json" in report["data"] and "results" in report["data"]
    assert report["other"] == []  # nothing of the other case anywhere in the container
    assert sorted(report["tools"]) == ["create_file_inventory.py", "writer.py"]
    wait_for_keys(
        bucket,
        "projects/demo-case/results/summary.txt",
        "projects/demo-case/results/nested/deeper/leaf.txt",
    )
    summary = bucket.s3.read(f"{bucket.prefix}projects/demo-case/results/summary.txt")
    assert summary.startswith(b"case ") and b" read by " in summary
    assert bucket.s3.read(f"{bucket.prefix}projects/demo-case/results/nested/deeper/leaf.txt") == (
        b"leaf\n"
    )
    # The other case is as it was: its folder marker and its one file.
    other = {k for k in bucket.s3.keys(bucket.prefix) if "/other-case/" in k}
    assert other == {
        f"{bucket.prefix}projects/other-case/",
        f"{bucket.prefix}projects/other-case/only-in-other-case.txt",
    }


def test_cli_runs_read_write_and_see_only_their_case(
    bucket_workspace: BucketWorkspace, engine_env: dict[str, str], base_image: str
) -> None:
    fill(bucket_workspace.path)
    ws = str(bucket_workspace.path)
    inventory = roscoe(
        "run", "--workspace", ws, "--image", base_image,
        "demo-case", "create_file_inventory.py", "--", "--format", "json",
        env=engine_env,
    )  # fmt: skip
    assert inventory.returncode == 0, inventory.stderr.decode()
    # Every file of the case, byte for byte as in the example it was copied from.
    listed = {e["path"]: e["sha256"] for e in json.loads(inventory.stdout)["entries"]}
    assert listed == expected_inventory()

    done = roscoe(
        "run", "--workspace", ws, "--image", base_image, "demo-case", "writer.py", env=engine_env
    )
    assert done.returncode == 0, done.stderr.decode()
    check_writer_output(bucket_workspace, done.stdout.decode())


def post_run(port: int, token: str, data: dict[str, Any]) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(
            "POST",
            "/runs",
            body=json.dumps(data).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 200, body
        return json.loads(body)  # type: ignore[no-any-return]
    finally:
        conn.close()


def test_service_runs_read_write_and_see_only_their_case(
    bucket_workspace: BucketWorkspace, runner_env: dict[str, str], runner_image: str
) -> None:
    fill(bucket_workspace.path)
    env = {
        **runner_env,
        "ROSCOE_RUNNER_IMAGE": runner_image,
        "ROSCOE_WORKSPACE": str(bucket_workspace.path),
    }
    started = roscoe("server", "start", env=env)
    assert started.returncode == 0, started.stderr.decode()
    port, token = int(env["ROSCOE_PORT"]), paths.token_file().read_text().strip()

    inventory = post_run(
        port,
        token,
        {"case": "demo-case", "script": "create_file_inventory.py", "args": ["--format", "md"]},
    )
    assert (inventory["status"], inventory["exit_code"]) == ("succeeded", 0), inventory
    assert "notes/2024/visit-log.md" in inventory["output"]

    written = post_run(port, token, {"case": "demo-case", "script": "writer.py"})
    assert (written["status"], written["exit_code"]) == ("succeeded", 0), written
    check_writer_output(bucket_workspace, written["output"])


def doctor(env: dict[str, str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    done = roscoe("doctor", "--json", env=env)
    data = json.loads(done.stdout)
    assert done.returncode == (0 if data["ok"] else 1)
    return data, {check["name"]: check for check in data["checks"]}


def test_doctor_passes_a_bucket_mounted_with_allow_other(
    bucket_workspace: BucketWorkspace, engine_env: dict[str, str]
) -> None:
    (bucket_workspace.path / "projects" / "case-1").mkdir()
    data, checks = doctor({**engine_env, "ROSCOE_WORKSPACE": str(bucket_workspace.path)})
    for name in ("workspace", "workspace engine access", "workspace run user"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "FUSE: s3fs (fuse.s3fs)" in checks["workspace file system"]["detail"]
    fs = data["workspace"]["file_system"]
    assert (fs["fs_type"], fs["fuse"], fs["allow_other"]) == ("fuse.s3fs", True, True)
    assert data["workspace"]["run_user_can_write"] is True


def test_doctor_finds_a_mount_of_another_user_without_allow_other(
    bucket_mount_without_allow_other: FuseMount,
    bucket_workspace: BucketWorkspace,
    engine_env: dict[str, str],
) -> None:
    mount = bucket_mount_without_allow_other
    workspace = mount.under(bucket_workspace.prefix)
    env = {**engine_env, "ROSCOE_WORKSPACE": str(workspace)}
    data, checks = doctor(env)
    assert data["ok"] is False
    engine = checks["workspace engine access"]
    assert engine["status"] == "fail"
    assert f"made by uid {mount.uid} without allow_other" in engine["detail"]
    assert "not even root" in engine["detail"]
    assert "-o allow_other" in engine["hint"] and "user_allow_other" in engine["hint"]
    assert checks["workspace"]["status"] == "fail"
    fs = data["workspace"]["file_system"]
    assert (fs["mount_point"], fs["allow_other"], fs["mount_uid"]) == (
        str(mount.path),
        False,
        mount.uid,
    )
    assert data["workspace"]["engine_can_read"] is False
    # What a run then meets: roscoe, as root, may not even look at the folder.
    done = roscoe("run", "demo-case", "writer.py", env=env)
    assert done.returncode == 2
    assert f"workspace {workspace} (env ROSCOE_WORKSPACE) cannot be read: Permission denied" in (
        done.stderr.decode()
    )
    assert b"roscoe doctor" in done.stderr


def test_doctor_finds_a_root_mount_without_allow_other_and_runs_fail_as_it_says(
    bucket_workspace: BucketWorkspace, engine_env: dict[str, str], base_image: str
) -> None:
    fill(bucket_workspace.path)
    with bucket_mounted(uid=0, gid=0, allow_other=False) as mount:
        workspace = mount.under(bucket_workspace.prefix)
        env = {**engine_env, "ROSCOE_WORKSPACE": str(workspace)}
        data, checks = doctor(env)
        assert checks["workspace engine access"]["status"] == "ok"  # the engine is root
        user = checks["workspace run user"]
        assert user["status"] == "fail"
        assert "uid 1000 (the runs' user) cannot write in case demo-case" in user["detail"]
        assert "made by uid 0 without allow_other" in user["detail"]
        assert "-o allow_other" in user["hint"]
        assert data["workspace"]["run_user_can_write"] is False
        done = roscoe("run", "--image", base_image, "demo-case", "writer.py", env=env)
        assert done.returncode != 0
        assert b"Permission denied" in done.stdout + done.stderr
