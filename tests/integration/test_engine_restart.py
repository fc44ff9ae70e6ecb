"""After the engine restarts (and so after the machine reboots), the runner comes back by
itself and answers with the same token, port and workspace, and runs work again.

Docker: dockerd stops its containers when it stops and starts `unless-stopped` ones when it
starts. Podman has no daemon: at boot podman-restart.service runs `podman start --all
--filter restart-policy=always`. Without systemd here, the test stops the API service and the
runner (what a shutdown does), starts the service again and runs that unit's own ExecStart.

These tests stop and start the engines the whole machine shares: they hold the engines lock
exclusively (helpers.engines_lock) and leave the engines running.
"""

from __future__ import annotations

import http.client
import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import make_workspace

from helpers import engines_lock, engines_script, free_port, roscoe
from roscoe.config import paths

pytestmark = [pytest.mark.engine, pytest.mark.engine_restart]

PODMAN_RESTART_UNIT = Path("/lib/systemd/system/podman-restart.service")
BACK_DEADLINE_S = 120.0


def podman_restart_command() -> list[str]:
    """The ExecStart of the installed podman-restart.service, $LOGGING expanded."""
    if not PODMAN_RESTART_UNIT.exists():
        pytest.fail(f"{PODMAN_RESTART_UNIT} is not installed (Debian's podman package has it)")
    text = PODMAN_RESTART_UNIT.read_text()
    env: dict[str, str] = {}
    command = ""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, setting = value.strip().strip('"').partition("=")
            env[name] = setting.strip('"')
        elif key == "ExecStart":
            command = value.strip()
    for name, value in env.items():
        command = command.replace(f"${name}", value)
    words = shlex.split(command)
    assert words[1:] and "--filter" in words and "restart-policy=always" in words, words
    return words


def request(port: int, method: str, path: str, body: dict | None = None, **headers: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def wait_back(port: int) -> None:
    deadline = time.monotonic() + BACK_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/health")[0] == 200:
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the runner did not answer on port {port} within {BACK_DEADLINE_S:g} s")


def status_of(env: dict[str, str]) -> dict[str, Any]:
    return json.loads(roscoe("server", "status", "--json", env=env).stdout)  # type: ignore[no-any-return]


def simulate_reboot(engine_name: str, container_id: str) -> None:
    if engine_name == "docker":
        engines_script("stop", "dockerd")
        engines_script("start")
        return
    engines_script("stop", "podman")
    # What the shutdown does to the runner: it is stopped (its restart policy stays).
    subprocess.run(["podman", "stop", "-t", "30", container_id], check=True, capture_output=True)
    engines_script("start")
    done = subprocess.run(podman_restart_command(), capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_the_runner_comes_back_with_the_same_token_port_and_workspace(
    engine_name: str, engine_env: dict[str, str], runner_image: str, unique_name: str, tmp_path
) -> None:
    port = free_port()
    workspace = make_workspace(tmp_path)
    env = {
        **engine_env,
        "ROSCOE_CONTAINER_NAME": unique_name,
        "ROSCOE_PORT": str(port),
        "ROSCOE_RUNNER_IMAGE": runner_image,
        "ROSCOE_WORKSPACE": str(workspace),
    }
    with engines_lock():
        try:
            reboot_and_check(engine_name, env, port, workspace)
        finally:
            roscoe("server", "stop", "--timeout", "0", env=env)


def reboot_and_check(engine_name: str, env: dict[str, str], port: int, workspace: Path) -> None:
    done = roscoe("server", "start", env=env)
    assert done.returncode == 0, done.stderr.decode()
    before = status_of(env)
    token = paths.token_file().read_text().strip()
    simulate_reboot(engine_name, str(before["container_id"]))
    wait_back(port)

    after = status_of(env)
    assert after["state"] == "running"
    assert after["container_id"] == before["container_id"]  # the same runner, restarted
    assert after["started_at"] != before["started_at"]
    assert (after["endpoint"], after["workspace"]) == (before["endpoint"], str(workspace))
    assert paths.token_file().read_text().strip() == token
    auth = {"Authorization": f"Bearer {token}"}
    assert request(port, "GET", "/runs", **auth)[0] == 200
    code, run = request(
        port, "POST", "/runs", {"case": "demo-case", "script": "create_file_inventory.py"}, **auth
    )
    assert code == 200, run
    assert (run["status"], run["exit_code"]) == ("succeeded", 0), run
    assert "metadata.json" in run["output"]
