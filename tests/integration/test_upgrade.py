"""Upgrading roscoe on real Docker and Podman: a runner on another version is named by
`server start` and `server status`, and moved by `server start --replace` or `restart`.

A new roscoe pins a new image. Here the "old" image is the test runner image with another
org.opencontainers.image.version label, built for this test and removed after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import roscoe
from roscoe import __version__

pytestmark = pytest.mark.engine

OLD_VERSION = "0.0.1"


@pytest.fixture
def old_image(engine: Any, engine_host: str, runner_image: str) -> Iterator[str]:
    """The runner image labelled as roscoe OLD_VERSION, under a tag of this test's own: built
    with `docker build` (the legacy builder, which both engines' APIs take)."""
    tag = f"roscoe-runner:old-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {runner_image}\nLABEL org.opencontainers.image.version={OLD_VERSION}\n"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    built = subprocess.run(
        ["docker", "-H", engine_host, "build", "-q", "-t", tag, "-"],
        input=dockerfile.encode(),
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr.decode()
    assert engine.image_inspect(tag) is not None
    yield tag
    subprocess.run(
        ["docker", "-H", engine_host, "rmi", "-f", tag], capture_output=True, check=False
    )


def status_of(env: dict[str, str]) -> dict[str, Any]:
    done = roscoe("server", "status", "--json", env=env)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def ok(done: Any) -> Any:
    assert done.returncode == 0, done.stderr.decode()
    return done


def start_old_runner(runner_env: dict[str, str], old_image: str) -> str:
    """Start the runner the way the previous roscoe did: on its pinned (old) image."""
    old_env = {**runner_env, "ROSCOE_RUNNER_IMAGE": old_image}
    done = ok(roscoe("server", "start", env=old_env))
    assert f"is roscoe {OLD_VERSION}, but this CLI is {__version__}" in done.stderr.decode()
    status = status_of(runner_env)
    assert (status["image_version"], status["version_match"]) == (OLD_VERSION, False)
    return str(status["container_id"])


def test_start_and_status_name_the_old_version_and_replace_moves_it(
    engine, runner_env, runner_image, old_image
) -> None:
    first = start_old_runner(runner_env, old_image)
    new_env = {**runner_env, "ROSCOE_RUNNER_IMAGE": runner_image}  # what the new CLI pins

    human = roscoe("server", "status", env=new_env).stdout.decode()
    assert f"image {OLD_VERSION}, CLI {__version__}  (differs from this CLI)" in human
    assert f"`roscoe server restart` (or `server start --replace`) moves it to {__version__}" in (
        human
    )

    kept = ok(roscoe("server", "start", env=new_env))
    assert b"already running" in kept.stdout
    err = kept.stderr.decode()
    assert f"the runner is on roscoe {OLD_VERSION} ({old_image}); this CLI is {__version__}" in err
    assert "--replace" in err
    assert status_of(new_env)["container_id"] == first

    moved = ok(roscoe("server", "start", "--replace", env=new_env))
    assert b"replaced and started" in moved.stdout
    status = status_of(new_env)
    assert status["container_id"] != first
    assert (status["state"], status["image_version"], status["version_match"]) == (
        "running",
        __version__,
        True,
    )
    assert engine.inspect_container(first) is None


def test_restart_moves_the_old_runner_to_this_version(runner_env, runner_image, old_image) -> None:
    first = start_old_runner(runner_env, old_image)
    new_env = {**runner_env, "ROSCOE_RUNNER_IMAGE": runner_image}
    ok(roscoe("server", "restart", env=new_env))
    status = status_of(new_env)
    assert status["container_id"] != first
    assert (status["image"], status["image_version"], status["version_match"]) == (
        runner_image,
        __version__,
        True,
    )
