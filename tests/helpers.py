"""Helpers for tests: run the real CLI, find roscoe's containers, engine addresses."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import sysconfig
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
# The third engine of the run and runner suites: the rootless Podman service of the test user
# (scripts/engines.sh), driven by roscoe running AS that user (`cli_command`).
ROOTLESS = "podman-rootless"
# The engines of the run and runner suites: a module marked with this runs under the rootless
# test user too.
WITH_ROOTLESS = pytest.mark.parametrize(
    "engine_name", ["docker", "podman", ROOTLESS], indirect=True
)
# Set (by the `engine_env` fixture) to "user:uid:gid:home": the CLI runs as that user.
CLI_USER_VAR = "ROSCOE_TEST_CLI_USER"


def engine_kind(engine_name: str) -> str:
    """What roscoe calls the engine of a test parameter: podman-rootless is a Podman."""
    return "podman" if engine_name == ROOTLESS else engine_name


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
    """Run the real CLI in a subprocess, with the test's environment plus `env` (as the
    rootless test user, in its own login environment, under `engine_name` podman-rootless)."""
    argv, full_env = cli_command(list(args), env)
    return subprocess.run(
        argv,
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def cli_command(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of `python -m roscoe ARGS`: the test's environment plus `env`.

    Under ROSCOE_TEST_CLI_USER the process runs as that user (setpriv: the pid stays the CLI's)
    with the user's HOME, USER and XDG_RUNTIME_DIR, and without DOCKER_HOST or CONTAINER_HOST
    unless `env` names them: roscoe finds the user's rootless socket as a user's login would.
    """
    full_env = dict(os.environ)
    as_user = full_env.pop(CLI_USER_VAR, "")
    if not as_user:
        full_env.update(env or {})
        return [sys.executable, "-m", "roscoe", *args], full_env
    user, uid, gid, home = as_user.split(":")
    for name in ("DOCKER_HOST", "CONTAINER_HOST"):
        full_env.pop(name, None)
    python, python_path = python_for(int(uid), int(gid))
    full_env.update(
        HOME=home, USER=user, LOGNAME=user, XDG_RUNTIME_DIR=f"/run/user/{uid}", **python_path
    )
    full_env.update(env or {})
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", python]
    return [*argv, "-m", "roscoe", *args], full_env


def hand_to_cli_user(path: Path) -> None:
    """Under ROSCOE_TEST_CLI_USER: `path` and all under it become that user's, as if its roscoe
    had made them (for state a test writes itself before the CLI runs). Else nothing."""
    as_user = os.environ.get(CLI_USER_VAR, "")
    if not as_user:
        return
    _, uid, gid, _ = as_user.split(":")
    for folder, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            os.chown(Path(folder) / name, int(uid), int(gid), follow_symlinks=False)


@functools.cache
def python_for(uid: int, gid: int) -> tuple[str, dict[str, str]]:
    """A Python that user can run roscoe with, and the PYTHONPATH it needs ({} for none).

    This interpreter if the user may run it; else (a venv made from a Python under a private
    home, such as pyenv's in /root) the system's Python of the same version, given roscoe's
    source and this venv's packages on PYTHONPATH. AssertionError saying why when neither works.
    """
    import roscoe

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    source = str(Path(roscoe.__file__).resolve().parents[1])
    packages = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    python_path = {"PYTHONPATH": os.pathsep.join([source, *sorted(packages)])}
    candidates = [(sys.executable, {})] + [
        (f"{folder}/python{version}", python_path)
        for folder in ("/usr/bin", "/usr/local/bin")
        if Path(f"{folder}/python{version}").exists()
    ]
    tried = []
    for python, extra in candidates:
        done = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", python, "-c",
             "import roscoe.cli.app"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra},
            cwd="/",
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return python, extra
        tried.append(f"{python}: {done.stderr.decode().strip().splitlines()[-1:]}")
    raise AssertionError(f"uid {uid} cannot run roscoe with any Python here ({'; '.join(tried)})")


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


def post_runner_run(port: int, data: dict[str, Any], timeout: float = 120) -> tuple[int, bytes]:
    """POST /runs to the runner on this machine with its token: (status, raw body)."""
    import http.client
    import json

    from roscoe.config import paths

    token = paths.token_file().read_text().strip()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            "/runs",
            body=json.dumps(data).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def post_run(port: int, data: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """POST /runs, which must answer 200: the run's record."""
    import json

    status, body = post_runner_run(port, data, timeout)
    assert status == 200, body
    return dict(json.loads(body))
