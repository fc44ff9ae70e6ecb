"""`roscoe server start` pulls an absent runner image from the loopback registry, with progress.

The runner image is pushed once per module under a unique repository. Each test untags that
reference on the engine under test (the layers stay, as they would on a user's machine after
an upgrade), so the pull path runs for real: the engine fetches the manifest and reports
layers, and roscoe must see the image present afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_pull_registry import dk, in_registry
from test_server import ok, status_json

from helpers import ENGINE_HOSTS, RUNNER_IMAGE, roscoe, skip_or_fail
from roscoe.engine import Engine

pytestmark = [pytest.mark.engine, pytest.mark.registry]


@pytest.fixture(scope="module")
def pushed_runner() -> Iterator[str]:
    docker = ENGINE_HOSTS["docker"]
    if dk(docker, "image", "inspect", RUNNER_IMAGE).returncode != 0:
        skip_or_fail(f"{RUNNER_IMAGE} is not built on docker (make build-image)", "docker")
    with in_registry("runner", lambda ref: dk(docker, "tag", RUNNER_IMAGE, ref, check=True)) as ref:
        yield ref


@pytest.fixture
def absent_runner(pushed_runner: str, engine_env: dict[str, str]) -> Iterator[str]:
    host = engine_env["DOCKER_HOST"]
    dk(host, "rmi", pushed_runner)
    yield pushed_runner
    dk(host, "rmi", pushed_runner)


def test_start_pulls_the_absent_image_with_progress(
    engine: Engine, runner_env: dict[str, str], absent_runner: str
) -> None:
    assert engine.image_inspect(absent_runner) is None
    done = ok(roscoe("server", "start", "--image", absent_runner, env=runner_env))
    shown = done.stderr.decode()
    assert f"pulling {absent_runner}" in shown
    assert "\x1b[" not in shown  # not a terminal: plain lines
    assert engine.image_inspect(absent_runner) is not None
    code, status = status_json(runner_env)
    assert (code, status["state"], status["image"]) == (0, "running", absent_runner)
    ok(roscoe("server", "stop", env=runner_env))


def test_start_with_pull_never_and_an_absent_image_is_exit_4(
    engine: Engine, runner_env: dict[str, str], absent_runner: str, unique_name: str
) -> None:
    done = roscoe("server", "start", "--image", absent_runner, "--pull", "never", env=runner_env)
    assert done.returncode == 4, done.stderr.decode()
    assert "--pull never" in done.stderr.decode()
    assert engine.inspect_container(unique_name) is None
