"""What a run used and how it ended, under runc and gVisor, on Docker and Podman; and gVisor
refused before any container exists where it is not set up.

The isolation suite itself (uid, capabilities, read-only root and Tools, no network, only its
own case, limits, timeout, Ctrl-C, output) is tests/integration/test_run.py, parametrized
over `isolation` too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_run_support import CASE, leftovers, make_workspace, record_of, run_cli, run_ids

from helpers import ENGINE_HOSTS, roscoe

pytestmark = pytest.mark.engine

ISOLATIONS = pytest.mark.parametrize("isolation", ["runc", "gvisor"], indirect=True)
MIB = 1 << 20

BUSY = """
import time
hold = bytearray(96 << 20)  # 96 MiB, written: resident
for i in range(0, len(hold), 4096):
    hold[i] = 1
begin = time.process_time()
while time.process_time() - begin < 0.5:  # half a second of CPU, however long that takes
    pass
print("done", flush=True)
"""
SELF_KILL = "import os, signal, sys\nos.kill(os.getpid(), getattr(signal, sys.argv[1]))\n"
CHILD_HOG = """
import subprocess, sys
hog = "hog = [b'x' * (16 << 20) for _ in range(64)]"
child = subprocess.run([sys.executable, "-c", hog])
print("child ended", child.returncode, flush=True)
"""
SPIN = "print('spinning', flush=True)\nwhile True:\n    pass\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(
        tmp_path / "ws",
        {"busy.py": BUSY, "self_kill.py": SELF_KILL, "child_hog.py": CHILD_HOG, "spin.py": SPIN},
    )


@pytest.fixture
def clean(engine: Any, isolated_dirs: Path) -> Any:
    yield
    assert leftovers(engine, isolated_dirs) == []


def only_record(data_dir: Path) -> dict[str, Any]:
    (run_id,) = run_ids(data_dir)
    return record_of(data_dir, run_id)


@ISOLATIONS
def test_a_run_records_what_it_used(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path, isolation: str
) -> None:
    done = run_cli(ws, base_image, "--memory", "512m", CASE, "busy.py")
    assert done.returncode == 0, done.stderr
    record = only_record(isolated_dirs)
    assert record["isolation"] == isolation
    assert 96 * MIB < record["peak_memory_bytes"] < 512 * MIB
    # The loop ran until the script had used half a second of CPU (gVisor counts in 10 ms).
    assert record["cpu_user_s"] + record["cpu_system_s"] >= 0.49
    shown = roscoe("runs", "show", record["id"]).stdout.decode()
    assert f"peak {record['peak_memory_bytes'] / MIB:.1f} MiB" in shown
    assert f"{record['cpu_user_s']:.3f} s user" in shown


@ISOLATIONS
def test_a_script_killed_by_its_own_signal_is_not_a_memory_kill(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path, isolation: str
) -> None:
    done = run_cli(ws, base_image, "--memory", "256m", CASE, "self_kill.py", "SIGKILL")
    assert done.returncode == 137, done.stderr
    assert b"killed by SIGKILL (9), not at the memory limit" in done.stderr
    record = only_record(isolated_dirs)
    assert (record["status"], record["exit_code"]) == ("failed", 137)
    assert record["peak_memory_bytes"] is not None  # the launcher outlived the script

    done = run_cli(ws, base_image, CASE, "self_kill.py", "SIGTERM")
    assert done.returncode == 143 and b"killed by SIGTERM (15)" in done.stderr


@ISOLATIONS
def test_a_memory_kill_is_told_apart(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path, isolation: str
) -> None:
    done = run_cli(ws, base_image, "--memory", "64m", "--timeout", "60", CASE, "child_hog.py")
    record = only_record(isolated_dirs)
    if isolation == "runc":
        # The kernel killed the child at the limit and counted it; the script went on, and
        # its own exit code stands, with a warning (Podman too, which never says OOMKilled).
        assert done.returncode == 0, done.stderr
        assert b"child ended -9" in done.stdout
        assert record["status"] == "succeeded"
        assert "a process of the run was killed at the memory limit (64m)" in record["message"]
    else:
        # Under gVisor the host's OOM killer stops the whole sandbox, launcher and all.
        assert done.returncode == 137, done.stderr
        assert record["status"] == "oom_killed"
        assert "killed at the memory limit (64m)" in record["message"]


@ISOLATIONS
def test_a_timed_out_run_still_says_what_it_used(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path, isolation: str
) -> None:
    done = run_cli(ws, base_image, "--timeout", "2", CASE, "spin.py")
    assert done.returncode == 124, done.stderr
    record = only_record(isolated_dirs)
    assert (record["status"], record["timed_out"]) == ("timed_out", True)
    # Asked to stop, the launcher killed the script and reported before the container ended.
    assert record["cpu_user_s"] is not None and record["cpu_user_s"] > 0
    assert record["peak_memory_bytes"] is not None


# -- gVisor refused where it is not set up -----------------------------------------------------
# Docker heeds the runtime asked for, and refuses one it does not know before any container
# exists (tests/unit/test_isolation.py); Podman's API ignores it: these are Podman's.
@pytest.mark.parametrize("engine_name", ["podman"])
def test_gvisor_on_podman_without_its_service_is_refused_before_any_container(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    done = run_cli(ws, base_image, "--isolation", "gvisor", CASE, "busy.py")
    assert done.returncode == 5, done.stderr
    err = done.stderr.decode()
    assert "gVisor is not set up for Podman" in err and "ROSCOE_GVISOR_HOST" in err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert run_ids(isolated_dirs) == []


@pytest.mark.parametrize("engine_name", ["podman"])
def test_a_gvisor_host_that_runs_runc_is_caught_before_the_script_runs(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    """ROSCOE_GVISOR_HOST pointing at an engine whose containers run under runc: the
    container is created there, found not to be under gVisor, and removed unstarted."""
    done = roscoe(
        "run",
        "--workspace",
        str(ws),
        "--image",
        base_image,
        "--isolation",
        "gvisor",
        CASE,
        "busy.py",
        env={"ROSCOE_GVISOR_HOST": ENGINE_HOSTS["podman"]},
    )
    assert done.returncode == 5, done.stderr
    assert b"not gVisor's runsc: nothing ran" in done.stderr
    assert done.stdout == b""
    assert run_ids(isolated_dirs) == []


def test_doctor_says_whether_gvisor_is_usable(
    engine_name: str, engine_env: dict[str, str], gvisor_runtime: object
) -> None:
    done = roscoe("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    gvisor = checks["gvisor"]
    if engine_name == "docker":
        assert gvisor["status"] == "ok" and gvisor["detail"].startswith("usable")
    else:  # Podman's own endpoint runs runc: usable only through its gVisor service
        assert gvisor["status"] == "ok" and gvisor["detail"].startswith("not available")
        assert "ROSCOE_GVISOR_HOST" in gvisor["hint"]
    configured = roscoe("doctor", "--json", env={"ROSCOE_ISOLATION": "gvisor"})
    checks = {c["name"]: c for c in json.loads(configured.stdout)["checks"]}
    if engine_name == "podman":
        assert checks["gvisor"]["status"] == "fail" and configured.returncode == 1
    else:
        assert checks["gvisor"]["status"] == "ok"


@pytest.mark.parametrize("isolation", ["gvisor"], indirect=True)
def test_doctor_with_the_gvisor_host_set(isolation: str, engine_env: dict[str, str]) -> None:
    done = roscoe("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["gvisor"]["status"] == "ok"
    assert "runs use it (run.isolation)" in checks["gvisor"]["detail"]
