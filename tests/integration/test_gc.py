"""A SIGKILLed roscoe: its container still dies by its deadline, and `roscoe gc` sweeps it."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from test_run_support import CASE, make_workspace, spawn_cli, wait_for_output, wait_until

from helpers import roscoe, roscoe_containers
from roscoe.labels import LABEL_OWNER_PID

pytestmark = pytest.mark.engine

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"


def _gc(*args: str) -> dict[str, Any]:
    done = roscoe("gc", "--json", *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_gc_after_a_sigkilled_roscoe(tmp_path: Path, engine: Any, base_image: str) -> None:
    ws = make_workspace(tmp_path / "ws", {"sleeper.py": SLEEPER})
    proc = spawn_cli(ws, base_image, "--timeout", "4", CASE, "sleeper.py")
    ours = {LABEL_OWNER_PID: str(proc.pid)}
    try:
        wait_for_output(proc, b"started")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        (container,) = roscoe_containers(engine, **ours)
        container_id = str(container["Id"])
        run_id = container["Labels"]["io.roscoe.run-id"]

        # Still running and not overdue: gc must leave it alone.
        if engine.inspect_container(container_id)["State"]["Running"]:
            assert run_id not in [i["run_id"] for i in _gc("--dry-run")["removed"]]

        # Nobody kills it from outside: the in-container timeout does, a little after 4 s.
        assert wait_until(
            lambda: not engine.inspect_container(container_id)["State"]["Running"], within=60
        ), "the container outlived its timeout"

        dry = _gc("--dry-run")
        assert run_id in [i["run_id"] for i in dry["removed"]] and dry["dry_run"] is True
        assert engine.inspect_container(container_id) is not None  # a dry run removes nothing

        done = roscoe("gc")
        assert done.returncode == 0, done.stderr
        assert f"roscoe-run-{run_id}" in done.stdout.decode()
        assert engine.inspect_container(container_id) is None
        assert roscoe_containers(engine, **ours) == []

        # The record its roscoe never finished is finished by gc, from the container's end.
        record = json.loads(roscoe("runs", "show", run_id, "--json").stdout)
        assert record["status"] == "failed"
        assert record["exit_code"] == 137  # the in-container timeout's SIGKILL
        assert "recorded by roscoe gc" in record["message"]
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in roscoe_containers(engine, **ours):
            engine.remove_container(str(leftover["Id"]), force=True)
