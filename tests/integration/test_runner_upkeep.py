"""A runner left up for months, on real Docker and Podman: its container log is capped by the
engine, /health probes stay out of it unless asked for, and the service prunes old runs when
told to."""

from __future__ import annotations

import http.client
import json
import os
import time
from typing import Any

import pytest

from helpers import roscoe
from helpers_engine_api import EngineAPI
from roscoe.config import paths
from roscoe.runs.host import UNPRIVILEGED_UID
from roscoe.runs.records import RunRecord, write_record

pytestmark = pytest.mark.engine


def ok(done: Any) -> Any:
    assert done.returncode == 0, done.stderr.decode()
    return done


def start(env: dict[str, str], *args: str) -> None:
    ok(roscoe("server", "start", *args, env=env))


@pytest.fixture
def env(runner_env: dict[str, str], runner_image: str) -> dict[str, str]:
    return {**runner_env, "ROSCOE_RUNNER_IMAGE": runner_image}


def get(env: dict[str, str], path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", int(env["ROSCOE_PORT"]), timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def logged_paths(env: dict[str, str]) -> list[str]:
    done = ok(roscoe("logs", "--tail", "all", env=env))
    found = []
    for line in done.stdout.decode().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "request":
            found.append(str(entry["path"]))
    return found


def test_the_engine_caps_the_runners_log(
    engine, engine_name, engine_host, env, unique_name
) -> None:
    start(env)
    container = engine.inspect_container(unique_name)
    if engine_name == "docker":
        assert container["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "3", "max-size": "10m"},
        }
        assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    else:
        # Podman's compatible inspect shows no log options; its own API shows the cap.
        native = EngineAPI(engine_host).call("GET", f"/v4.0.0/libpod/containers/{unique_name}/json")
        assert native["HostConfig"]["LogConfig"]["Type"] == "k8s-file"
        assert native["HostConfig"]["LogConfig"]["Size"] == "10MB"
        assert native["HostConfig"]["RestartPolicy"]["Name"] == "always"


def test_health_probes_are_logged_only_at_debug(env) -> None:
    start(env)
    for index in range(3):
        assert get(env, f"/health?probe={index}") == 200
    assert get(env, "/runs?visible=yes") == 401  # an info line, so the log is not just empty
    seen = logged_paths(env)
    assert "/runs?visible=yes" in seen
    assert not [path for path in seen if path.startswith("/health")]

    start(env, "--log-level", "debug")  # another level: the runner is replaced
    for index in range(3):
        assert get(env, f"/health?probe={index}") == 200
    seen = logged_paths(env)
    assert [f"/health?probe={index}" for index in range(3)] == [
        path for path in seen if path.startswith("/health?probe=")
    ]
    started = [
        json.loads(line)
        for line in ok(roscoe("logs", "--tail", "all", env=env)).stdout.decode().splitlines()
        if '"service_started"' in line
    ]
    assert started[-1]["log_level"] == "debug"


def old_record(run_id: str, days_ago: float, status: str = "succeeded") -> None:
    when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - days_ago * 86400))
    write_record(
        RunRecord(
            id=run_id,
            case="demo-case",
            script="create_file_inventory.py",
            status=status,
            started_at=when,
            finished_at=None if status == "running" else when,
        )
    )


def test_the_service_prunes_old_runs_when_told_to(env) -> None:
    runs = paths.ensure_runs_dir()
    if os.getuid() == 0:  # as `server start` leaves it: the service (uid 1000) owns runs/
        os.chown(runs, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    old_record("20250101-000000-0000old1", 90)
    old_record("20250101-000000-0000old2", 60)
    old_record("20250101-000000-0000live", 90, status="running")
    old_record("20260101-000000-0000new1", 1)
    start({**env, "ROSCOE_SERVICE_PRUNE": "true", "ROSCOE_RUNS_OLDER_THAN": "30d"})

    def left() -> set[str]:
        return {p.name[-4:] for p in runs.iterdir()}

    deadline = time.monotonic() + 60
    while left() != {"live", "new1"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == {"live", "new1"}
    lines = ok(roscoe("logs", "--tail", "all", env=env)).stdout.decode().splitlines()
    pruned = [json.loads(line) for line in lines if '"phase": "pruned"' in line]
    assert pruned and pruned[0]["removed"] == 2


def test_off_by_default(env) -> None:
    old_record("20250101-000000-0000old1", 400)
    start(env)
    lines = ok(roscoe("logs", "--tail", "all", env=env)).stdout.decode()
    assert '"retention"' not in lines
    assert (paths.runs_dir() / "20250101-000000-0000old1").is_dir()
