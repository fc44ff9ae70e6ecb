"""Pulling through `roscoe image pull` from the loopback registry, on Docker and on Podman.

A module fixture pushes the base image to the registry under a unique repository (so
concurrent test runs never collide) and deletes it from the registry at the end; each test
removes the reference from the engine under test before pulling, and after.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pytest

from helpers import ENGINE_HOSTS, REGISTRY, roscoe, skip_or_fail
from roscoe.engine import Engine
from roscoe.images.choice import ImageChoice
from roscoe.images.ensure import ensure_image
from roscoe.images.version import DEV_IMAGE

pytestmark = [pytest.mark.engine, pytest.mark.registry]


def dk(host: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "-H", host, *args], capture_output=True, text=True, timeout=300, check=check
    )


def registry_request(method: str, path: str) -> urllib.request.Request:
    request = urllib.request.Request(f"http://{REGISTRY}{path}", method=method)
    request.add_header(
        "Accept",
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json",
    )
    return request


def no_proxy_open(request: urllib.request.Request) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(request, timeout=10)


def registry_up() -> bool:
    try:
        no_proxy_open(registry_request("GET", "/v2/"))
    except (OSError, urllib.error.URLError):
        return False
    return True


def delete_from_registry(repository: str, tag: str) -> None:
    """Best effort: the manifest by digest (the registry runs with deletes enabled)."""
    try:
        response = no_proxy_open(registry_request("HEAD", f"/v2/{repository}/manifests/{tag}"))
        digest = response.headers["Docker-Content-Digest"]  # type: ignore[attr-defined]
        no_proxy_open(registry_request("DELETE", f"/v2/{repository}/manifests/{digest}"))
    except (OSError, urllib.error.URLError, KeyError):
        pass


def small_rootfs() -> bytes:
    """A tar with one 8 MB file of random bytes: a layer no engine already has."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    return buffer.getvalue()


@contextlib.contextmanager
def in_registry(name: str, make_local: Callable[[str], None]) -> Iterator[str]:
    """A reference that exists only in the loopback registry, under a unique repository.

    `make_local(ref)` creates `ref` on Docker; it is pushed, untagged locally, yielded, and
    deleted from the registry at the end.
    """
    if not registry_up():
        skip_or_fail(f"no registry at {REGISTRY} (scripts/engines.sh start)", "docker")
    docker = ENGINE_HOSTS["docker"]
    if dk(docker, "version").returncode != 0:
        skip_or_fail(f"docker is not reachable at {docker}", "docker")
    repository = f"roscoe-test/{name}-{uuid.uuid4().hex[:10]}"
    ref = f"{REGISTRY}/{repository}:v1"
    make_local(ref)
    try:
        pushed = dk(docker, "push", ref)
        assert pushed.returncode == 0, pushed.stderr
    finally:
        dk(docker, "rmi", ref)
    yield ref
    delete_from_registry(repository, "v1")


@pytest.fixture(scope="module")
def pushed() -> Iterator[str]:
    """A small image of random bytes that exists only in the registry."""

    def import_rootfs(ref: str) -> None:
        subprocess.run(
            ["docker", "-H", ENGINE_HOSTS["docker"], "import", "-", ref],
            input=small_rootfs(),
            capture_output=True,
            timeout=120,
            check=True,
        )

    with in_registry("pull", import_rootfs) as ref:
        yield ref


@pytest.fixture
def absent(pushed: str, engine_env: dict[str, str]) -> Iterator[str]:
    """The pushed reference, absent from the engine under test before and after the test."""
    host = engine_env["DOCKER_HOST"]
    dk(host, "rmi", pushed)
    yield pushed
    dk(host, "rmi", pushed)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pull_shows_plain_progress_and_the_image_is_there(absent: str, engine: Engine) -> None:
    assert engine.image_inspect(absent) is None
    result = roscoe("image", "pull", "--image", absent)
    assert result.returncode == 0, result.stderr
    err = result.stderr.decode()
    assert f"pulling {absent}" in err
    assert f"pulled {absent}" in err
    assert "\x1b" not in err + result.stdout.decode()  # not a terminal: no escape codes
    assert "Traceback" not in err
    assert absent.rsplit(":", 1)[0] + "@sha256:" in result.stdout.decode()
    assert engine.image_inspect(absent) is not None


def test_show_json_after_a_pull_names_source_digest_and_version(
    absent: str, engine_name: str
) -> None:
    before = json.loads(roscoe("image", "show", "--json", "--image", absent).stdout)
    assert before["present"] is False
    assert roscoe("image", "pull", "--image", absent).returncode == 0
    result = roscoe("image", "show", "--json", "--image", absent)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {
        "ref",
        "source",
        "local_only",
        "present",
        "image_id",
        "digest",
        "version",
        "cli_version",
        "version_match",
        "warnings",
        "engine",
    }
    assert data["ref"] == absent
    assert data["source"] == "--image"
    assert data["present"] is True
    assert data["engine"] == engine_name
    assert data["digest"].startswith(absent.rsplit(":", 1)[0] + "@sha256:")
    assert data["image_id"].startswith("sha256:")
    # An imported file system carries no roscoe version label.
    assert data["version"] is None
    assert data["version_match"] == "unknown"


def test_a_missing_tag_fails_with_exit_4_and_one_line(pushed: str, engine_env: dict) -> None:
    missing = pushed.rsplit(":", 1)[0] + ":no-such-tag"
    result = roscoe("image", "pull", "--image", missing)
    assert result.returncode == 4
    errors = [line for line in result.stderr.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert missing in errors[0] and "manifest unknown" in errors[0]
    assert "Traceback" not in result.stderr.decode()


def test_an_unreachable_registry_fails_with_exit_4(engine_env: dict[str, str]) -> None:
    ref = f"127.0.0.1:{unused_port()}/roscoe-test/nothing:v1"
    result = roscoe("image", "pull", "--image", ref)
    assert result.returncode == 4
    err = result.stderr.decode()
    assert "connection refused" in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_pull_never_with_an_absent_image_is_exit_4(absent: str, engine: Engine) -> None:
    from roscoe.errors import ImageError

    with pytest.raises(ImageError) as caught:
        ensure_image(engine, ImageChoice(absent, "--image"), "never")
    assert caught.value.exit_code == 4
    assert engine.image_inspect(absent) is None


def test_a_present_image_is_used_without_the_registry(engine: Engine, runner_image: str) -> None:
    # roscoe-runner:dev exists only here, never in a registry: "missing" must not pull it.
    status = ensure_image(engine, ImageChoice(runner_image, "--image"))
    assert status.present and not status.pulled
    assert status.version_match.status == "match"


def test_local_dev_image_show(engine: Engine, engine_name: str, engine_env: dict[str, str]) -> None:
    # --use-local-image means the image `make build-image` tags, whatever image the other
    # tests are pointed at (ROSCOE_TEST_RUNNER_IMAGE).
    if engine.image_inspect(DEV_IMAGE) is None:
        skip_or_fail(f"{DEV_IMAGE} is not built on {engine_name} (make build-image)", engine_name)
    result = roscoe("image", "show", "--json", "--use-local-image")
    data = json.loads(result.stdout)
    assert data["ref"] == DEV_IMAGE
    assert data["local_only"] is True
    assert data["present"] is True
    assert data["version_match"] == "match"


def test_two_concurrent_pulls_of_the_same_image_both_succeed(
    absent: str, engine: Engine, engine_env: dict[str, str]
) -> None:
    import sys

    env = {**os.environ, **engine_env}
    command = [sys.executable, "-m", "roscoe", "image", "pull", "--image", absent]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outcomes = [process.communicate(timeout=300) for process in (first, second)]
    for process, (_, err) in zip((first, second), outcomes, strict=True):
        assert process.returncode == 0, err.decode()
    assert engine.image_inspect(absent) is not None
