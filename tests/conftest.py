"""Fixtures every test shares.

- Every test gets its own data and config dirs (never the user's real ones).
- Integration tests take `engine_name` (parametrized docker / podman) and the fixtures built on
  it. On a laptop without an engine they skip with the reason; under CI=true or
  ROSCOE_REQUIRE_ENGINES=docker,podman a missing engine is a failure, never a skip.
- `gvisor_runtime`, `rootless_podman` / `rootless_podman_host`, `bucket_workspace` and
  `bucket_mount_without_allow_other` reach what scripts/engines.sh sets up beyond the engines;
  ROSCOE_REQUIRE_ENGINES=...,gvisor,rootless,bucket makes their absence a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import BASE_IMAGE, ENGINE_HOSTS, RUNNER_IMAGE, free_port, skip_or_fail
from helpers_engine_api import EngineAPI, EngineAPIError
from helpers_infra import (
    BUCKET_DIR,
    GVISOR_RUNTIME,
    PODMAN_GVISOR_HOST,
    S3,
    S3_ENDPOINT,
    BucketWorkspace,
    FuseMount,
    GVisorRuntime,
    RootlessPodman,
    bucket_mounted,
    mount_options,
    rootless_podman_settings,
)
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


# ---------------------------------------------------------------------------------------------
# gVisor, rootless Podman and the FUSE bucket (scripts/engines.sh sets them up; each skips on a
# laptop without it and fails where ROSCOE_REQUIRE_ENGINES names gvisor, rootless or bucket).


@pytest.fixture
def gvisor_runtime(engine_name: str) -> GVisorRuntime:
    """How to run a container under gVisor on this engine: create it on `.host` with
    `.host_config` merged into its HostConfig (see GVisorRuntime)."""
    if engine_name == "docker":
        host = ENGINE_HOSTS["docker"]
        runtimes = _answer(host, "docker", lambda api: api.info().get("Runtimes") or {})
        if GVISOR_RUNTIME not in runtimes:
            skip_or_fail(
                f"Docker at {host} has no '{GVISOR_RUNTIME}' runtime (scripts/engines.sh start)",
                "gvisor",
            )
        return GVisorRuntime("docker", host, {"Runtime": GVISOR_RUNTIME}, GVISOR_RUNTIME)
    # Podman's compat API ignores HostConfig.Runtime: gVisor is a service of its own.
    default = _answer(PODMAN_GVISOR_HOST, "gvisor", lambda api: api.info().get("DefaultRuntime"))
    if default != GVISOR_RUNTIME:
        skip_or_fail(
            f"the Podman service at {PODMAN_GVISOR_HOST} runs '{default}', not "
            f"'{GVISOR_RUNTIME}' (scripts/engines.sh start)",
            "gvisor",
        )
    return GVisorRuntime("podman", PODMAN_GVISOR_HOST, {}, GVISOR_RUNTIME)


@pytest.fixture
def isolation(
    request: pytest.FixtureRequest, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The run.isolation of the roscoe processes a test starts: "runc" unless a test is
    parametrized with indirect=["isolation"]. For "gvisor" it sets ROSCOE_ISOLATION and, on
    Podman, ROSCOE_GVISOR_HOST (its gVisor service), as a user following docs/usage.md
    would; skips (or fails where required) when gVisor is not set up."""
    value = str(getattr(request, "param", "runc"))
    if value == "gvisor":
        found = request.getfixturevalue("gvisor_runtime")
        monkeypatch.setenv("ROSCOE_ISOLATION", "gvisor")
        if engine_name == "podman":
            monkeypatch.setenv("ROSCOE_GVISOR_HOST", found.host)
    return value


def _answer(host: str, needed_by: str, ask: Callable[[EngineAPI], Any]) -> Any:
    try:
        return ask(EngineAPI(host))
    except (OSError, ValueError, EngineAPIError) as exc:
        skip_or_fail(f"no engine answers at {host} ({exc}; scripts/engines.sh start)", needed_by)
        raise


@pytest.fixture
def rootless_podman() -> RootlessPodman:
    """The rootless Podman API service of the test user: `.host`, `.user`, `.uid`, `.gid`."""
    settings = rootless_podman_settings()
    if settings is None:
        skip_or_fail("no rootless test user (scripts/engines.sh install)", "rootless")
        raise AssertionError  # not reached
    if not _answer(settings.host, "rootless", lambda api: api.ping()):
        skip_or_fail(f"rootless Podman does not answer at {settings.host}", "rootless")
    return settings


@pytest.fixture
def rootless_podman_host(rootless_podman: RootlessPodman) -> str:
    """unix:///run/user/<uid>/podman/podman.sock of the test user."""
    return rootless_podman.host


@pytest.fixture
def bucket_workspace() -> Iterator[BucketWorkspace]:
    """A fresh workspace (projects/ and Tools/) inside the bucket mounted with allow_other;
    `.s3.keys(.prefix)` lists its objects. Removed afterwards."""
    if mount_options(BUCKET_DIR) is None:
        skip_or_fail(f"no bucket mounted at {BUCKET_DIR} (scripts/engines.sh start)", "bucket")
    s3 = S3()
    if not s3.answers():
        skip_or_fail(f"the S3 API at {S3_ENDPOINT} does not answer", "bucket")
    name = f"ws-{uuid.uuid4().hex[:10]}"
    path = BUCKET_DIR / name
    (path / "projects").mkdir(parents=True)
    (path / "Tools").mkdir()
    yield BucketWorkspace(path, f"{name}/", s3)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bucket_mount_without_allow_other(bucket_workspace: BucketWorkspace) -> Iterator[FuseMount]:
    """The same bucket mounted a second time by the rootless test user WITHOUT allow_other:
    root and the engines' daemons cannot enter it. `.under(bucket_workspace.prefix)` is this
    test's workspace seen through it. Unmounted afterwards (with a deadline)."""
    settings = rootless_podman_settings()
    if settings is None:
        skip_or_fail("no unprivileged test user to mount as (scripts/engines.sh install)", "bucket")
        raise AssertionError  # not reached
    with bucket_mounted(uid=settings.uid, gid=settings.gid, allow_other=False) as mount:
        yield mount
