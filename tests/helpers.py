"""Helpers for tests: run the real CLI, find roscoe's containers, engine addresses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from roscoe.constants import LABEL_MANAGED_BY, MANAGED_BY_VALUE

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


def roscoe_containers(engine: object, **labels: str) -> list[dict[str, object]]:
    """Every container roscoe created carrying the given extra labels (any state)."""
    wanted = {LABEL_MANAGED_BY: MANAGED_BY_VALUE, **labels}
    return engine.containers(wanted, all=True)  # type: ignore[attr-defined, no-any-return]
