"""The runner where things go wrong (issue 10), on real Docker and Podman: a runner killed
with runs in flight, a runner cut off from its engine, Podman's API service restarting under
a runner and under `roscoe run`.

Runners here are started by `roscoe server start` with the test's runner image
(ROSCOE_TEST_RUNNER_IMAGE), named uniquely, on a free port, and removed whatever happens.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from fault_support import (
    UnixProxy,
    start_engines,
    stop_podman_service,
)
from service_fixtures import make_workspace
from test_run_support import CASE, spawn_cli, wait_for_output, wait_until
from test_run_support import make_workspace as make_run_workspace

from helpers import RUNNER_IMAGE, engines_lock, post_runner_run, roscoe, roscoe_containers
from roscoe.config import paths
from roscoe.labels import LABEL_OWNER_CONTAINER, LABEL_OWNER_PID, LABEL_RUN_ID

pytestmark = pytest.mark.engine


def start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    done = roscoe("server", "start", "--image", RUNNER_IMAGE, "--pull", "never", *args, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return done


def status_json(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = roscoe("server", "status", "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def post_run(port: int, data: dict[str, Any], timeout: float = 180) -> tuple[int, Any]:
    """POST /runs; (status, decoded body), or (0, the error) when the connection broke."""
    try:
        status, body = post_runner_run(port, data, timeout)
    except (OSError, http.client.HTTPException) as exc:
        return 0, exc
    return status, json.loads(body)


def in_background(port: int, data: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(post_run(port, data)), daemon=True)
    thread.start()
    return thread, answers


def record(run_id: str) -> dict[str, Any]:
    return dict(json.loads((paths.run_dir(run_id) / "run.json").read_text()))


def runs_of(engine: Any, runner_id: str) -> list[dict[str, Any]]:
    return roscoe_containers(engine, **{LABEL_OWNER_CONTAINER: runner_id})


def remove_runs_of(engine: Any, runner_id: str) -> None:
    for leftover in runs_of(engine, runner_id):
        engine.remove_container(str(leftover["Id"]), force=True)


# -- item 4: a runner killed with runs in flight ----------------------------------------------
@pytest.mark.parametrize("mend", ["server start", "gc"])
def test_a_killed_runners_runs_are_stopped_removed_and_recorded(  # noqa: PLR0917 - fixtures
    engine: Any,
    engine_host: str,
    runner_env: dict[str, str],
    unique_name: str,
    tmp_path: Path,
    mend: str,
) -> None:
    workspace = make_workspace(tmp_path)
    start(runner_env, "--workspace", str(workspace))
    runner_id = str(engine.inspect_container(unique_name)["Id"])
    port = int(runner_env["ROSCOE_PORT"])
    try:
        for _ in range(3):
            in_background(port, {"case": "demo-case", "script": "sleep.py", "args": ["300"]})
        assert wait_until(
            lambda: sum(c["State"] == "running" for c in runs_of(engine, runner_id)) == 3,
            within=90,
        ), runs_of(engine, runner_id)
        run_ids = [str(c["Labels"][LABEL_RUN_ID]) for c in runs_of(engine, runner_id)]
        labels = runs_of(engine, runner_id)[0]["Labels"]
        assert LABEL_OWNER_PID not in labels  # pid 1 on the host's name could never say "gone"

        # SIGKILL, as `docker kill` does: the service cannot cancel anything.
        killed = subprocess.run(
            ["docker", "-H", engine_host, "kill", runner_id], capture_output=True, check=False
        )
        assert killed.returncode == 0, killed.stderr
        assert all(record(r)["status"] == "running" for r in run_ids)
        if mend == "server start":
            # The new runner's service sweeps them as it starts, and `server start` after it:
            # whichever comes first says so (the CLI, or the service's log).
            done = start(runner_env, "--workspace", str(workspace))
            assert b"replaced" in done.stdout
        else:
            done = roscoe("gc", env=runner_env)
            assert done.returncode == 0, done.stderr.decode()
            assert all(f"run {r}".encode() in done.stdout for r in run_ids), done.stdout
        # Stopped and removed, not left to run 300 s (a removal the other sweep began may
        # take a moment to finish).
        assert wait_until(lambda: runs_of(engine, runner_id) == [], within=30)
        for run_id in run_ids:
            finished = record(run_id)
            assert (finished["status"], finished["exit_code"]) == ("interrupted", None)
            assert f"its runner container ({runner_id[:12]})" in finished["message"]
    finally:
        remove_runs_of(engine, runner_id)


# -- item 1: a runner that cannot reach its engine ----------------------------------------------
def test_a_runner_cut_off_from_its_engine_is_degraded_and_replaced(  # noqa: PLR0917 - fixtures
    engine: Any,
    engine_name: str,
    engine_host: str,
    runner_env: dict[str, str],
    unique_name: str,
    tmp_path: Path,
) -> None:
    # The runner reaches the engine through a proxy laid out like the real socket (Podman's
    # in a folder of its own, Docker's by itself); cutting the proxy cuts the runner off, as
    # a restart of Docker's API (or a socket-file mount of Podman's) did.
    folder = tmp_path / ("podman" if engine_name == "podman" else "proxy")
    folder.mkdir()
    real = engine_host.removeprefix("unix://")
    proxy = UnixProxy(folder / Path(real).name, real)
    through_proxy = {**runner_env, "DOCKER_HOST": f"unix://{proxy.path}"}
    workspace = make_workspace(tmp_path)
    start(through_proxy, "--workspace", str(workspace))
    first = str(engine.inspect_container(unique_name)["Id"])
    assert status_json(runner_env)[1]["health"]["engine_reachable"] is True

    proxy.cut()
    # The service keeps its engine's answer for a second: a burst of probes costs one ping.
    assert wait_until(lambda: status_json(runner_env)[1]["state"] == "degraded", within=15)
    code, status = status_json(runner_env)
    assert (code, status["state"]) == (1, "degraded"), status
    assert status["health"]["answering"] is True
    assert status["health"]["engine_reachable"] is False
    assert str(proxy.path) not in status["health"]["engine_error"]  # the runner's own path
    shown = roscoe("server", "status", env=runner_env).stdout.decode()
    assert "degraded" in shown and "cannot reach the engine" in shown

    done = start(runner_env, "--workspace", str(workspace))
    assert b"replaced" in done.stdout
    assert b"cannot reach the engine" in done.stdout + done.stderr
    assert str(engine.inspect_container(unique_name)["Id"]) != first
    code, status = status_json(runner_env)
    assert (code, status["state"]) == (0, "running"), status
    answer = post_run(int(runner_env["ROSCOE_PORT"]), {"case": "demo-case", "script": "fail.py"})
    assert answer[0] == 200 and answer[1]["exit_code"] == 3  # runs work again


# -- items 1 and 3: Podman's API service restarts ----------------------------------------------
# Docker's containers die with dockerd: only Podman's outlive its API service.
PODMAN_ONLY = pytest.mark.parametrize("engine_name", ["podman"])


@pytest.mark.engine_restart
@PODMAN_ONLY
def test_the_runner_survives_a_restart_of_podmans_service(
    engine: Any, runner_env: dict[str, str], unique_name: str, tmp_path: Path
) -> None:
    workspace = make_workspace(tmp_path)
    start(runner_env, "--workspace", str(workspace))
    runner_id = str(engine.inspect_container(unique_name)["Id"])
    port = int(runner_env["ROSCOE_PORT"])
    try:
        with engines_lock():  # from the run's start: it must still be under way at the stop
            thread, answers = in_background(
                port, {"case": "demo-case", "script": "sleep.py", "args": ["25"]}
            )
            assert wait_until(lambda: bool(runs_of(engine, runner_id)), within=60)
            (lost,) = runs_of(engine, runner_id)
            try:
                stop_podman_service()
                thread.join(120)  # the run in flight: its stream broke, the engine is away
            finally:
                start_engines()  # always left running
        # Item 3: the service claims no result it does not know.
        ((status, body),) = answers
        assert status == 200, body
        assert (body["status"], body["exit_code"]) == ("unknown", 125), body
        assert "may still be running" in body["message"]
        # Item 1: the runner's mount of Podman's socket folder sees the new socket.
        code, shown = status_json(runner_env)
        assert (code, shown["state"], shown["health"]["engine_reachable"]) == (0, "running", True)
        again = post_run(port, {"case": "demo-case", "script": "fail.py"})
        assert again[0] == 200 and again[1]["exit_code"] == 3, again
        # The lost run went on; once it has ended, gc finishes its record from its real end.
        lost_id = str(lost["Id"])
        assert wait_until(
            lambda: not (engine.inspect_container(lost_id) or {}).get("State", {}).get("Running"),
            within=90,
        )
        done = roscoe("gc", env=runner_env)
        assert done.returncode == 0, done.stderr.decode()
        finished = record(body["id"])
        assert (finished["status"], finished["exit_code"]) == ("succeeded", 0), finished
        assert "lost track of this run" in finished["message"]
        assert engine.inspect_container(lost_id) is None
    finally:
        remove_runs_of(engine, runner_id)


@pytest.mark.engine_restart
@PODMAN_ONLY
def test_roscoe_run_claims_no_result_when_podmans_service_goes_away(
    engine: Any, base_image: str, tmp_path: Path, isolated_dirs: Path
) -> None:
    script = (
        "import time\nprint('started', flush=True)\ntime.sleep(20)\n"
        "open('/data/finished.txt', 'w').write('yes')\n"
    )
    ws = make_run_workspace(tmp_path / "ws", {"slow.py": script})
    proc: subprocess.Popen[bytes] | None = None
    mine: dict[str, str] = {}
    try:
        with engines_lock():  # from the run's start: it must still be under way at the stop
            proc = spawn_cli(ws, base_image, "--timeout", "120", CASE, "slow.py")
            mine = {LABEL_OWNER_PID: str(proc.pid)}
            try:
                wait_for_output(proc, b"started")
                (container,) = roscoe_containers(engine, **mine)
                stop_podman_service()
                _, err = proc.communicate(timeout=120)
            finally:
                start_engines()
        assert proc.returncode == 125, err.decode()
        assert b"lost track of the run" in err and b"may still be running" in err
        run_id = str(container["Labels"][LABEL_RUN_ID])
        assert record(run_id)["status"] == "unknown"
        # The script ran on and finished its work; gc then records how it really ended.
        assert wait_until((ws / "projects" / CASE / "finished.txt").exists, within=90)
        assert wait_until(
            lambda: not engine.inspect_container(container["Id"])["State"]["Running"], within=30
        )
        done = roscoe("gc")
        assert done.returncode == 0, done.stderr.decode()
        finished = record(run_id)
        assert (finished["status"], finished["exit_code"]) == ("succeeded", 0), finished
        assert roscoe_containers(engine, **mine) == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        for leftover in roscoe_containers(engine, **mine) if mine else []:
            engine.remove_container(str(leftover["Id"]), force=True)
