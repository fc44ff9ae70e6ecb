"""`roscoe run` where things go wrong (issue 10), on real Docker and Podman: a SIGKILLed
roscoe keeps its output, run containers carry no HEALTHCHECK, an absent image is named as
given, and a child killed at the memory limit."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from test_run_support import (
    CASE,
    leftovers,
    make_workspace,
    run_cli,
    run_ids,
    spawn_cli,
    wait_for_output,
)

from helpers import roscoe_containers
from roscoe.labels import LABEL_OWNER_PID

pytestmark = pytest.mark.engine

PRINT_THEN_SLEEP = "import time\nprint('printed before the kill', flush=True)\ntime.sleep(120)\n"


def test_a_sigkilled_roscoe_keeps_what_it_printed_in_output_log(
    tmp_path: Path, engine: Any, base_image: str, isolated_dirs: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", {"sleeper.py": PRINT_THEN_SLEEP})
    proc = spawn_cli(ws, base_image, "--timeout", "60", CASE, "sleeper.py")
    try:
        shown = wait_for_output(proc, b"printed before the kill")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        (run_id,) = run_ids(isolated_dirs)
        saved = (isolated_dirs / "runs" / run_id / "output.log").read_bytes()
        # Everything that reached the terminal is in the file (print's newline may come in a
        # piece of its own, a moment later).
        assert saved.startswith(shown) and saved in (shown, b"printed before the kill\n")
    finally:
        if proc.poll() is None:
            proc.kill()
        leftovers(engine, isolated_dirs, [proc.pid])


def test_run_containers_carry_no_healthcheck_and_no_network_sandbox(
    tmp_path: Path, engine: Any, runner_image: str, isolated_dirs: Path, engine_name: str
) -> None:
    # The runner image has a HEALTHCHECK for its service; a run in it must not inherit it.
    ws = make_workspace(tmp_path / "ws", {"sleeper.py": PRINT_THEN_SLEEP})
    proc = spawn_cli(ws, runner_image, "--timeout", "60", CASE, "sleeper.py")
    try:
        wait_for_output(proc, b"printed before the kill")
        (container,) = roscoe_containers(engine, **{LABEL_OWNER_PID: str(proc.pid)})
        inspected = engine.inspect_container(container["Id"])
        assert inspected["Config"]["Healthcheck"]["Test"] == ["NONE"]
        assert not (inspected["State"].get("Health") or {}).get("Status")
        if engine_name == "docker":  # no sandbox from the network controller (engine/runs.py)
            assert inspected["Config"]["NetworkDisabled"] is True
            assert inspected["HostConfig"]["NetworkMode"] == "none"
            assert not inspected["NetworkSettings"]["SandboxID"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        leftovers(engine, isolated_dirs, [proc.pid])


def test_an_absent_image_is_named_literally(tmp_path: Path, engine: Any) -> None:
    ws = make_workspace(tmp_path / "ws", {"tool.py": "print('never')\n"})
    done = run_cli(ws, "nonexist:zzz", CASE, "tool.py")
    assert done.returncode == 4, done.stderr
    assert b"nonexist:zzz" in done.stderr
    assert "\U0001f4a4".encode() not in done.stderr  # not the emoji rich makes of ":zzz:"


CHILD_HOG = """
import subprocess, sys
child = subprocess.run([sys.executable, "-c", "hog = bytearray(512 << 20)"])
print("child ended with", child.returncode, flush=True)
"""


def test_a_child_killed_at_the_memory_limit_leaves_the_scripts_code(
    tmp_path: Path, engine: Any, engine_name: str, base_image: str, isolated_dirs: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", {"parent.py": CHILD_HOG})
    done = run_cli(ws, base_image, "--memory", "128m", CASE, "parent.py")
    try:
        assert b"child ended with -9" in done.stdout  # the kernel killed the child
        assert done.returncode == 0, done.stderr  # Docker made it 137, Podman 0: one rule
        (run_id,) = run_ids(isolated_dirs)
        record = json.loads((isolated_dirs / "runs" / run_id / "run.json").read_text())
        assert (record["status"], record["exit_code"]) == ("succeeded", 0)
        if engine_name == "docker":  # Podman never reports OOMKilled: nothing to warn of
            warning = "a process of the run was killed at the memory limit (128m)"
            assert warning in record["message"]
            assert warning.encode() in done.stderr
    finally:
        assert leftovers(engine, isolated_dirs) == []


def test_a_cpu_limit_above_the_engines_cpus_is_exit_2(
    tmp_path: Path, engine: Any, base_image: str, isolated_dirs: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", {"tool.py": "print('never')\n"})
    done = run_cli(ws, base_image, "--cpus", "999", CASE, "tool.py")
    count = engine.cpu_count()
    assert done.returncode == 2, done.stderr  # Docker said 125, Podman ran it
    assert f"a CPU limit of 999 is more than the {count} CPUs".encode() in done.stderr
    assert run_ids(isolated_dirs) == []  # refused before any container or record
    within = run_cli(ws, base_image, "--cpus", str(count), CASE, "tool.py")
    assert within.returncode == 0, within.stderr
    assert leftovers(engine, isolated_dirs) == []
