"""Helpers for tests: run the real CLI, find roscoe's containers, engine addresses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.engine.protocols import GcEngine
from roscoe.labels import LABEL_MANAGED_BY, MANAGED_BY_VALUE

ENGINE_HOSTS = {
    "docker": os.environ.get("ROSCOE_TEST_DOCKER_HOST", "unix:///var/run/docker.sock"),
    "podman": os.environ.get("ROSCOE_TEST_PODMAN_HOST", "unix:///run/podman/podman.sock"),
}
REGISTRY = os.environ.get("ROSCOE_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("ROSCOE_TEST_BASE_IMAGE", "roscoe-base:bookworm")
RUNNER_IMAGE = os.environ.get("ROSCOE_TEST_RUNNER_IMAGE", "roscoe-runner:dev")


def roscoe(
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 180,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real CLI in a subprocess, with the test's environment plus `env`."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "roscoe", *args],
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def roscoe_containers(engine: GcEngine, **labels: str) -> list[dict[str, Any]]:
    """Every container roscoe created carrying the given extra labels (any state)."""
    wanted = {LABEL_MANAGED_BY: MANAGED_BY_VALUE, **labels}
    return engine.containers(wanted, all=True)


# What ROSCOE_REQUIRE_ENGINES may name: the two engines, and what scripts/engines.sh sets up
# beyond them (gVisor's runtime on both engines, the rootless Podman service, the FUSE bucket).
REQUIREMENTS = ("docker", "podman", "gvisor", "rootless", "bucket")


def required_engines() -> set[str]:
    named = os.environ.get("ROSCOE_REQUIRE_ENGINES")
    if named is not None:
        return {n.strip() for n in named.split(",") if n.strip()}
    if os.environ.get("CI", "").lower() == "true":
        return set(REQUIREMENTS)
    return set()


def skip_or_fail(what: str, needed_by: str) -> None:
    """Skip on a developer laptop; fail where the engine (or gvisor, rootless, bucket) is
    required (CI)."""
    if needed_by in required_engines():
        pytest.fail(f"{what} (required here: ROSCOE_REQUIRE_ENGINES / CI)", pytrace=False)
    pytest.skip(what)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ENGINES_LOCK = Path(os.environ.get("ROSCOE_ENGINES_LOCK", "/tmp/roscoe-engines.lock"))
ENGINES_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "engines.sh"


def _lock_held_by_ancestor() -> str | None:
    """'READ' or 'WRITE' when this process or one it descends from holds the engines lock."""
    try:
        inode = ENGINES_LOCK.stat().st_ino
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    ancestors = set()
    pid = os.getpid()
    while pid > 1:
        ancestors.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    for line in table.splitlines():
        fields = line.split()
        # "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END"; waiters carry "->".
        if (
            len(fields) >= 6
            and fields[1] == "FLOCK"
            and fields[5].endswith(f":{inode}")
            and fields[4].isdigit()
            and int(fields[4]) in ancestors
        ):
            return fields[3]
    return None


@contextlib.contextmanager
def engines_lock() -> Iterator[None]:
    """Hold the engines lock exclusively for an engine restart (others' tests hold it shared).

    Held already by whoever started pytest (`flock -x LOCK pytest ...`): nothing to do. Held
    shared by them (a run among others' runs): a restart would wait for itself, so the test is
    skipped, saying how to run it. CI holds no lock: there the test takes it and runs.
    """
    held = _lock_held_by_ancestor()
    if held == "WRITE":
        yield
        return
    if held == "READ":
        pytest.skip(
            f"restarts an engine: run it under `flock -x {ENGINES_LOCK}` (this run holds it -s)"
        )
    import fcntl

    with ENGINES_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def engines_script(*args: str) -> None:
    """scripts/engines.sh ARGS (stop NAME, start): under engines_lock()."""
    done = subprocess.run(
        ["bash", str(ENGINES_SCRIPT), *args], capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
