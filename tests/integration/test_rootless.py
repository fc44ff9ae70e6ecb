"""roscoe run by an unprivileged user against that user's own rootless Podman service.

The CLI runs as the rootless test user (scripts/engines.sh), in that user's login environment:
no DOCKER_HOST, XDG_RUNTIME_DIR=/run/user/<uid> (tests/conftest.py, `engine_env`). The whole
run suite runs this way too (tests/integration/test_run.py); here: what only rootless has.
Where the user's containers cannot be limited (no cgroup controllers delegated: any cgroup v1
host), the fixtures turn run.require_limits off, as docs/usage.md tells a user to; the tests
of the refusal turn it back on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import make_workspace as make_service_workspace
from test_run_support import CASE, leftovers, limits_unenforced, make_workspace, run_cli, run_ids

from helpers import ENGINE_HOSTS, ROOTLESS, free_port, post_run, roscoe
from helpers_engine_api import EngineAPI
from helpers_infra import RootlessPodman
from roscoe.config import paths

pytestmark = [
    pytest.mark.engine,
    pytest.mark.parametrize("engine_name", [ROOTLESS], indirect=True),
]

WRITER = """
import os
os.makedirs("out/deeper")
with open("out/deeper/result.txt", "w") as handle:
    handle.write("written by the script\\n")
print(os.getuid(), os.getgid(), flush=True)
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", {"writer.py": WRITER})


@pytest.fixture
def clean(engine: Any, isolated_dirs: Path) -> Any:
    yield
    assert leftovers(engine, isolated_dirs) == []


def checks_of(done: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_doctor_says_rootless_and_finds_the_users_own_socket(
    engine_env: dict[str, str], rootless_podman: RootlessPodman
) -> None:
    # Docker's socket comes first in the detection order, and is not this user's to use.
    docker_socket = ENGINE_HOSTS["docker"].removeprefix("unix://")
    assert not os.stat(docker_socket).st_mode & 0o007
    done = roscoe("doctor", "--json")
    report = json.loads(done.stdout)
    assert report["engine"]["endpoint"] == rootless_podman.host
    assert report["engine"]["source"] == "probed socket"  # no DOCKER_HOST: found by itself
    assert report["engine"]["kind"] == "podman"
    checks = checks_of(done)
    assert checks["rootless"]["detail"] == "yes"
    assert report["workspace"]["engine_uid"] == rootless_podman.uid
    assert report["workspace"]["run_user"] == f"{rootless_podman.uid}:{rootless_podman.gid}"
    if limits_unenforced(ROOTLESS):
        # run.require_limits is off here (the fixture): a warning, with what to do.
        assert checks["limits"]["status"] == "warn", checks["limits"]
        assert "Delegate=" in checks["limits"]["hint"]
        required = roscoe("doctor", "--json", env={"ROSCOE_REQUIRE_LIMITS": "true"})
        assert checks_of(required)["limits"]["status"] == "fail" and required.returncode == 1
    else:
        assert checks["limits"]["status"] == "ok"


def test_files_a_run_writes_are_the_users_not_a_subordinate_uids(
    ws: Path, base_image: str, clean: None, rootless_podman: RootlessPodman
) -> None:
    done = run_cli(ws, base_image, CASE, "writer.py")
    assert done.returncode == 0, done.stderr
    uid, gid = rootless_podman.uid, rootless_podman.gid
    assert done.stdout.split()[:2] == [str(uid).encode(), str(gid).encode()]
    case = ws / "projects" / CASE
    for made in (case / "out", case / "out" / "deeper", case / "out" / "deeper" / "result.txt"):
        found = made.stat()
        assert (found.st_uid, found.st_gid) == (uid, gid), made


def test_a_run_whose_limits_cannot_be_enforced_is_refused_up_front(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    missing = limits_unenforced(ROOTLESS)
    if not missing:
        pytest.skip("this host delegates the memory and pids controllers: the limits hold")
    done = run_cli(ws, base_image, CASE, "writer.py", env={"ROSCOE_REQUIRE_LIMITS": "true"})
    assert done.returncode == 5, done.stderr
    err = done.stderr.decode()
    assert err.startswith("error: the rootless Podman at ")
    assert f"cgroup controllers {', '.join(missing)} are not delegated" in err
    assert "hint:" in err and "ROSCOE_REQUIRE_LIMITS=false" in err
    assert err.count("error:") == 1 and "Traceback" not in err and done.stdout == b""
    assert run_ids(isolated_dirs) == []
    assert not (ws / "projects" / CASE / "out").exists()  # nothing ran
    # Allowed to go without them, the run says so in its record and on stderr.
    done = run_cli(ws, base_image, "--json", CASE, "writer.py")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert "the run had no memory/process limit" in record["message"]


def test_gvisor_is_refused_up_front_with_a_hint(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    if not limits_unenforced(ROOTLESS):
        pytest.skip("this host delegates cgroup controllers to the user: gVisor may work")
    done = run_cli(ws, base_image, "--isolation", "gvisor", CASE, "writer.py")
    assert done.returncode == 5, done.stderr
    err = done.stderr.decode()
    assert "gVisor cannot run under this rootless Podman" in err
    assert "hint: use a rootful Podman service for gVisor runs" in err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert run_ids(isolated_dirs) == []


@pytest.mark.image
def test_the_runner_works_rootless(
    engine: Any,
    runner_image: str,
    unique_name: str,
    tmp_path: Path,
    rootless_podman: RootlessPodman,
) -> None:
    """server start, status, a run through the service, logs, stop: all as the user."""
    workspace = make_service_workspace(tmp_path)
    port = free_port()
    env = {
        "ROSCOE_CONTAINER_NAME": unique_name,
        "ROSCOE_PORT": str(port),
        "ROSCOE_RUNNER_IMAGE": runner_image,
    }
    try:
        started = roscoe("server", "start", "--workspace", str(workspace), env=env)
        assert started.returncode == 0, started.stderr.decode()
        # keep-id: the user's uid inside is the user's own (uid 0 of its user namespace)
        inspected = EngineAPI(rootless_podman.host).call(
            "GET", f"/v4.0.0/libpod/containers/{unique_name}/json"
        )
        assert f"{rootless_podman.uid}:0:1" in inspected["HostConfig"]["IDMappings"]["UidMap"]
        status = json.loads(roscoe("server", "status", "--json", env=env).stdout)
        assert (status["state"], status["engine"]["kind"]) == ("running", "podman")
        assert status["health"]["answering"] is True

        (workspace / "Tools" / "note.py").write_text(
            "import os\nopen('service-note.txt', 'w').write('hi')\nprint(os.getuid())\n"
        )
        record = post_run(port, {"case": "demo-case", "script": "note.py"})
        assert (record["status"], record["engine"]) == ("succeeded", "podman"), record
        user = rootless_podman.uid
        assert record["output"].strip() == str(user)
        written = workspace / "projects" / "demo-case" / "service-note.txt"
        assert written.stat().st_uid == user  # the user's file, written through the service
        assert (paths.runs_dir() / record["id"] / "run.json").stat().st_uid == user

        logs = roscoe("logs", "--tail", "20", env=env)
        assert logs.returncode == 0 and b"run_finished" in logs.stdout, logs.stderr
    finally:
        stopped = roscoe("server", "stop", env=env)
        engine.remove_container(unique_name, force=True)
    assert stopped.returncode == 0 and b"stopped" in stopped.stdout, stopped.stderr
