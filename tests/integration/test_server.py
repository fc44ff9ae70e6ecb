"""`roscoe server ...` against real Docker and Podman, with the real runner image.

Each test names its runner uniquely (ROSCOE_CONTAINER_NAME), picks a free port, and removes
every container it made, whatever happens.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from service_fixtures import make_workspace

from helpers import (
    ROOTLESS,
    cli_command,
    engine_kind,
    hand_to_cli_user,
    post_run,
    roscoe,
    roscoe_containers,
)
from roscoe import __version__
from roscoe.config import paths
from roscoe.engine.protocols import ContainerSpec

pytestmark = pytest.mark.engine


@pytest.fixture(params=["docker", "podman", ROOTLESS])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The runner on rootless Podman too, started by its user (tests/conftest.py)."""
    return str(request.param)


def start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return roscoe("server", "start", "--use-local-image", *args, env=env)


def status_json(env: dict[str, str]) -> tuple[int, dict]:
    done = roscoe("server", "status", "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def ok(done: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_start_status_stop(engine, engine_name, runner_env, unique_name) -> None:
    ok(start(runner_env))
    code, status = status_json(runner_env)
    assert code == 0
    stored = paths.server_id_file().read_text().strip()
    assert status["state"] == "running"
    assert status["name"] == unique_name
    assert status["container_id"] == stored
    assert status["image"] == "roscoe-runner:dev"
    assert status["image_version"] == __version__
    assert status["cli_version"] == __version__
    assert status["engine"]["kind"] == engine_kind(engine_name)
    assert status["health"]["answering"] is True
    assert status["endpoint"] == f"http://127.0.0.1:{runner_env['ROSCOE_PORT']}"
    assert status["token_file"] == str(paths.token_file())
    assert status["workspace"] == str(paths.default_workspace().resolve())
    inspected = engine.inspect_container(unique_name)
    assert inspected["Config"]["Labels"]["io.roscoe.kind"] == "server"

    done = ok(roscoe("server", "stop", env=runner_env))
    assert b"stopped" in done.stdout
    assert engine.inspect_container(unique_name) is None
    assert not paths.server_id_file().exists()
    again = ok(roscoe("server", "stop", env=runner_env))
    assert b"not running" in again.stdout


def test_start_twice_is_a_no_op(engine, runner_env, unique_name) -> None:
    ok(start(runner_env))
    first = engine.inspect_container(unique_name)["Id"]
    done = ok(start(runner_env))
    assert b"already running" in done.stdout
    assert engine.inspect_container(unique_name)["Id"] == first


def test_stale_stored_id_is_recovered(engine, runner_env, unique_name) -> None:
    paths.ensure_dir(paths.server_id_file().parent)
    paths.server_id_file().write_text("0" * 64 + "\n")
    hand_to_cli_user(paths.data_dir())
    ok(start(runner_env))
    assert paths.server_id_file().read_text().strip() == engine.inspect_container(unique_name)["Id"]


def test_foreign_container_needs_replace(engine, runner_env, unique_name, base_image) -> None:
    foreign = engine.create_container(  # no roscoe labels: someone else's container
        ContainerSpec(image=base_image, command=["sleep", "300"], name=unique_name)
    )
    refused = start(runner_env)
    assert refused.returncode == 1
    assert b"--replace" in refused.stderr
    assert engine.inspect_container(unique_name)["Id"] == foreign

    ok(start(runner_env, "--replace"))
    ours = engine.inspect_container(unique_name)
    assert ours["Id"] != foreign
    assert ours["Config"]["Labels"]["io.roscoe.managed-by"] == "roscoe"
    assert engine.inspect_container(foreign) is None


def test_stopped_runner_is_replaced(engine, runner_env, unique_name) -> None:
    ok(start(runner_env))
    old = engine.inspect_container(unique_name)["Id"]
    engine.stop_container(old, 30)
    done = ok(start(runner_env))
    assert b"replaced" in done.stdout
    new = engine.inspect_container(unique_name)
    assert new["Id"] != old
    assert new["State"]["Status"] == "running"
    assert engine.inspect_container(old) is None


def test_concurrent_starts_make_one_runner(engine, runner_env, unique_name) -> None:
    command, env = cli_command(["server", "start", "--use-local-image"], runner_env)
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
    mine = [c for c in roscoe_containers(engine) if f"/{unique_name}" in (c.get("Names") or [])]
    assert len(mine) == 1


def test_crash_at_start_shows_logs_and_leaves_nothing(engine, runner_env, unique_name) -> None:
    # An allocator that does not exist: the service's interpreter dies before it can listen.
    # (PYTHONHOME did this until -e refused interpreter-path variables.)
    done = start(runner_env, "-e", "PYTHONMALLOC=nonexistent")
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "lines of the runner's log" in err
    assert "Python" in err  # the interpreter's own last words
    assert engine.inspect_container(unique_name) is None
    assert not paths.server_id_file().exists()


def test_restart_gives_a_new_container_with_the_same_settings(
    engine, runner_env, unique_name
) -> None:
    ok(start(runner_env, "-e", "RUNNER_TEST_MARK=kept"))
    old = engine.inspect_container(unique_name)
    ok(roscoe("server", "restart", env=runner_env))
    new = engine.inspect_container(unique_name)
    assert new["Id"] != old["Id"]
    assert new["State"]["StartedAt"] != old["State"]["StartedAt"]
    assert "RUNNER_TEST_MARK=kept" in new["Config"]["Env"]
    assert f"ROSCOE_PORT={runner_env['ROSCOE_PORT']}" in new["Config"]["Env"]
    code, status = status_json(runner_env)
    assert (code, status["state"], status["container_id"]) == (0, "running", new["Id"])


def test_status_absent(runner_env) -> None:
    code, status = status_json(runner_env)
    assert code == 1
    assert status["state"] == "absent"
    assert status["container_id"] is None


def test_status_without_engine_is_exit_3() -> None:
    done = roscoe("server", "status", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert done.returncode == 3, done.stderr.decode()


def test_run_limits_reach_the_service(engine, runner_env, unique_name, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    env = {**runner_env, "ROSCOE_TIMEOUT": "2", "ROSCOE_MEMORY": "256m"}
    ok(start(env, "--workspace", str(workspace)))
    inspected = engine.inspect_container(unique_name)
    assert "ROSCOE_TIMEOUT=2" in inspected["Config"]["Env"]
    began = time.monotonic()
    record = post_run(
        int(runner_env["ROSCOE_PORT"]),
        {"case": "demo-case", "script": "sleep.py", "args": ["30"]},
    )
    assert record["status"] == "timed_out", record
    assert time.monotonic() - began < 25
    # Another timeout is another runner: the old one is replaced, not kept.
    again = ok(start({**env, "ROSCOE_TIMEOUT": "5"}, "--workspace", str(workspace)))
    assert b"replaced" in again.stdout
    assert "ROSCOE_TIMEOUT=5" in engine.inspect_container(unique_name)["Config"]["Env"]


@pytest.mark.parametrize("isolation", ["gvisor"], indirect=True)
def test_the_services_runs_are_under_gvisor_and_the_runner_is_not(  # noqa: PLR0917 - fixtures
    engine, engine_name, runner_env, runner_image, unique_name, tmp_path: Path, isolation: str
) -> None:
    workspace = make_workspace(tmp_path)
    (workspace / "Tools" / "kernel.sh").write_text("dmesg | head -n 2\n")
    ok(start({**runner_env, "ROSCOE_RUNNER_IMAGE": runner_image}, "--workspace", str(workspace)))
    inspected = engine.inspect_container(unique_name)
    assert "ROSCOE_ISOLATION=gvisor" in inspected["Config"]["Env"]
    record = post_run(int(runner_env["ROSCOE_PORT"]), {"case": "demo-case", "script": "kernel.sh"})
    assert (record["status"], record["isolation"]) == ("succeeded", "gvisor"), record
    assert "Starting gVisor" in record["output"]
    assert record["peak_memory_bytes"] is not None  # the launcher reported, from the runner too
    # The runner itself runs under the engine's usual runtime: gVisor's host networking would
    # be the sandbox's own loopback, out of the host's reach.
    if engine_name == "docker":
        assert inspected["HostConfig"].get("Runtime") in ("runc", "", None)
    else:
        # The gVisor service's socket sits next to Podman's (/run/podman, scripts/engines.sh):
        # the runner reaches it through the folder it already mounts for the engine, so a
        # restarted gVisor service is seen too.
        gvisor_socket = Path(os.environ["ROSCOE_GVISOR_HOST"].removeprefix("unix://"))
        assert gvisor_socket.parent == Path("/run/podman")
        assert (
            f"ROSCOE_GVISOR_HOST=unix:///run/roscoe/engine/{gvisor_socket.name}"
            in (inspected["Config"]["Env"])
        )
    # A request has no say in the isolation.
    token = paths.token_file().read_text().strip()
    connection = http.client.HTTPConnection("127.0.0.1", int(runner_env["ROSCOE_PORT"]))
    try:
        connection.request(
            "POST",
            "/runs",
            body=json.dumps({"case": "demo-case", "script": "kernel.sh", "isolation": "runc"}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        refused = connection.getresponse()
        assert refused.status == 400 and b"isolation" in refused.read()
    finally:
        connection.close()


def test_changed_env_replaces_and_is_what_restart_uses(engine, runner_env, unique_name) -> None:
    ok(start(runner_env, "-e", "RUNNER_TEST_SECRET=one"))
    first = engine.inspect_container(unique_name)
    label = first["Config"]["Labels"]["io.roscoe.config-hash"]
    assert label.startswith("hmac-sha256:") and "one" not in label  # a digest only
    done = ok(start(runner_env, "-e", "RUNNER_TEST_OTHER=1"))
    assert b"replaced" in done.stdout
    second = engine.inspect_container(unique_name)
    assert second["Id"] != first["Id"]
    assert "RUNNER_TEST_OTHER=1" in second["Config"]["Env"]
    assert not any(e.startswith("RUNNER_TEST_SECRET=") for e in second["Config"]["Env"])
    ok(roscoe("server", "restart", env=runner_env))
    assert "RUNNER_TEST_OTHER=1" in engine.inspect_container(unique_name)["Config"]["Env"]


def test_busy_port_leaves_the_running_runner(engine, runner_env, unique_name) -> None:
    ok(start(runner_env))
    before = engine.inspect_container(unique_name)["Id"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        refused = start(runner_env, "--port", str(busy))
    assert refused.returncode == 1
    assert b"in use" in refused.stderr
    assert b"replacing" not in refused.stderr
    after = engine.inspect_container(unique_name)
    assert after["Id"] == before and after["State"]["Status"] == "running"
    code, status = status_json(runner_env)
    assert (code, status["state"]) == (0, "running")


def test_stop_timeout_zero_kills_at_once(engine, runner_env, unique_name) -> None:
    ok(start(runner_env))
    began = time.monotonic()
    ok(roscoe("server", "stop", "--timeout", "0", env=runner_env))
    assert time.monotonic() - began < 15
    assert engine.inspect_container(unique_name) is None


def test_unpinned_image_warns_on_start(engine, engine_host, runner_env, unique_name) -> None:
    repository = f"roscoe-test-old-{uuid.uuid4().hex[:10]}"
    host = engine_host
    # The docker CLI speaks to either engine's API; roscoe itself has no tag or rmi.
    subprocess.run(
        ["docker", "-H", host, "tag", "roscoe-runner:dev", f"{repository}:latest"], check=True
    )
    try:
        done = ok(roscoe("server", "start", "--image", f"{repository}:latest", env=runner_env))
        assert b"warning:" in done.stderr
        assert b"not pinned" in done.stderr
    finally:
        engine.remove_container(unique_name, force=True)
        subprocess.run(
            ["docker", "-H", host, "rmi", f"{repository}:latest"], check=True, capture_output=True
        )


@pytest.mark.parametrize("wait", ["0", "-1"])
def test_wait_timeout_must_be_positive(engine, runner_env, unique_name, wait) -> None:
    done = start(runner_env, "--wait-timeout", wait)
    assert done.returncode == 2, done.stderr.decode()
    assert engine.inspect_container(unique_name) is None
