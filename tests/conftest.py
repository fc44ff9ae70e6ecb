"""Fixtures every test shares.

- Every test gets its own data and config dirs (never the user's real ones).
- Integration tests take `engine_name` (parametrized docker / podman) and the fixtures built on
  it. On a laptop without an engine they skip with the reason; under CI=true or
  ROSCOE_REQUIRE_ENGINES=docker,podman a missing engine is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import BASE_IMAGE, ENGINE_HOSTS, RUNNER_IMAGE, free_port, skip_or_fail
from roscoe.engine import Engine

# Variables that would leak a developer's own setup into tests.
LEAKY_VARS = [
    name
    for name in os.environ
    if name.startswith("ROSCOE_") and not name.startswith(("ROSCOE_TEST_", "ROSCOE_REQUIRE_"))
] + [
    "DOCKER_HOST",
    "CONTAINER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "NO_COLOR",
]


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private data and config dirs for each test, and none of the caller's roscoe settings."""
    for name in LEAKY_VARS:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "roscoe-data"
    monkeypatch.setenv("ROSCOE_DATA_DIR", str(data))
    monkeypatch.setenv("ROSCOE_CONFIG_DIR", str(tmp_path / "roscoe-config"))
    return data


@pytest.fixture(params=["docker", "podman"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_host(engine_name: str) -> str:
    host = ENGINE_HOSTS[engine_name]
    path = host.removeprefix("unix://")
    if host.startswith("unix://") and not Path(path).exists():
        skip_or_fail(f"{engine_name} is not reachable at {host}", engine_name)
    return host


@pytest.fixture
def engine_env(
    engine_name: str, engine_host: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment a real roscoe process needs to use this engine (also set in-process)."""
    monkeypatch.setenv("DOCKER_HOST", engine_host)
    monkeypatch.setenv("ROSCOE_RUNTIME", engine_name)
    return {"DOCKER_HOST": engine_host, "ROSCOE_RUNTIME": engine_name}


@pytest.fixture
def engine(engine_env: dict[str, str], engine_name: str) -> Iterator[Engine]:
    """A connected roscoe Engine on the real engine."""
    from roscoe.engine import connect
    from roscoe.errors import EngineError

    try:
        connected = connect(engine_name)
    except EngineError as exc:
        skip_or_fail(f"{engine_name}: {exc.message}", engine_name)
        raise
    yield connected
    connected.close()


def _image_present(engine: Engine, ref: str) -> bool:
    return engine.image_inspect(ref) is not None


@pytest.fixture
def base_image(engine: Engine, engine_name: str) -> str:
    """The small Debian image with python3 (scripts/build-base-image.sh)."""
    if not _image_present(engine, BASE_IMAGE):
        skip_or_fail(f"{BASE_IMAGE} is not built on {engine_name} (make base-image)", engine_name)
    return BASE_IMAGE


@pytest.fixture
def runner_image(engine: Engine, engine_name: str) -> str:
    """The runner image (make build-image)."""
    if not _image_present(engine, RUNNER_IMAGE):
        skip_or_fail(
            f"{RUNNER_IMAGE} is not built on {engine_name} (make build-image)", engine_name
        )
    return RUNNER_IMAGE


@pytest.fixture
def unique_name() -> str:
    """A container name no other test (or concurrent test run) will use."""
    return f"roscoe-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def runner_env(
    engine: Engine, engine_env: dict[str, str], runner_image: str, unique_name: str
) -> Iterator[dict[str, str]]:
    """Environment for a roscoe process driving this test's own runner; cleans up after."""
    env = {
        **engine_env,
        "ROSCOE_CONTAINER_NAME": unique_name,
        "ROSCOE_PORT": str(free_port()),
    }
    yield env
    engine.remove_container(unique_name, force=True)
