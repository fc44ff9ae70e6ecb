"""What the benches share: the engines' sockets, the image, roscoe's command, a timed run, and
the docker CLI doing what a roscoe run does. Imported by the scripts next to it (each is run
as `python bench/NAME.py`, so this folder is on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HOSTS = {
    "docker": os.environ.get("ROSCOE_TEST_DOCKER_HOST", "unix:///var/run/docker.sock"),
    "podman": os.environ.get("ROSCOE_TEST_PODMAN_HOST", "unix:///run/podman/podman.sock"),
}
IMAGE = os.environ.get("ROSCOE_BENCH_IMAGE", "roscoe-base:bookworm")
BIN = Path(sys.executable).parent


def roscoe_command() -> list[str]:
    """The console script of this venv, else `python -m roscoe`."""
    script = BIN / "roscoe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "roscoe"]


def timed(command: list[str], env: dict[str, str], timeout: float | None = None) -> float:
    """Wall seconds of one command, which must succeed (else the bench stops, saying why)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=timeout, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])}... failed ({done.returncode}): {done.stderr.decode()[-400:]}"
        )
    return took


def docker_run(host: str, image: str, ws: Path, timeout: int) -> list[str]:
    """The docker CLI doing what a roscoe run of Tools/noop.py on bench-case does (see
    roscoe.runs.execute): same mounts, user, limits and lock-down."""
    uid = "1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    return [
        "docker", "-H", host, "run", "--rm",
        "--network", "none", "--user", uid,
        "--memory", "2g", "--memory-swap", "2g", "--pids-limit", "512",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777",
        "-e", "HOME=/tmp", "-e", "PYTHONUNBUFFERED=1", "-e", "PYTHONDONTWRITEBYTECODE=1",
        "-v", f"{ws / 'projects' / 'bench-case'}:/data:rw", "-v", f"{ws / 'Tools'}:/tools:ro",
        "-w", "/data", "--label", "io.roscoe.bench=1",
        "--entrypoint", "timeout", image, "-s", "KILL", str(timeout + 3), "python3",
        "/tools/noop.py",
    ]  # fmt: skip
