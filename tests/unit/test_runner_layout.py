"""The runner container's definition: what `roscoe server start` asks the engine for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roscoe.runner.layout import CONTAINER_TOKEN_FILE, RunnerConfig, ServiceEnv, engine_socket_mount


def config(tmp_path: Path, **overrides: Any) -> RunnerConfig:
    socket = tmp_path / "engine.sock"
    socket.touch()
    values: dict[str, Any] = {
        "image": "roscoe-runner:dev",
        "name": "roscoe-runner",
        "port": 8765,
        "workspace": tmp_path / "ws",
        "runs_dir": tmp_path / "runs",
        "token_file": tmp_path / "token",
        "engine_socket": str(socket),
        "engine_kind": "docker",
        "env": {"API_KEY": "k"},
    }
    values.update(overrides)
    return RunnerConfig(**values)


def test_least_privilege_and_loopback(tmp_path: Path) -> None:
    spec = config(tmp_path).container_spec()
    assert spec.cap_drop == ["ALL"] and spec.read_only is True
    assert spec.security_opt == ["no-new-privileges"]
    assert spec.network == "host"
    assert spec.user != "0:0" and not spec.user.startswith("0:")
    assert spec.binds[str(tmp_path / "token")] == (CONTAINER_TOKEN_FILE, "ro")
    assert spec.binds[str(tmp_path / "ws")][1] == "ro"
    assert "ROSCOE_TOKEN" not in spec.environment  # the token is a file, not a variable


@pytest.mark.parametrize("selinux", [True, False])
def test_selinux_hosts_relabel_mounts_and_unconfine_the_socket_holder(
    tmp_path: Path, selinux: bool
) -> None:
    spec = config(tmp_path, selinux=selinux).container_spec()
    assert ("label=disable" in spec.security_opt) is selinux
    assert spec.binds[str(tmp_path / "ws")][1] == ("ro,z" if selinux else "ro")


def test_the_service_reads_back_what_the_starter_wrote(tmp_path: Path) -> None:
    wanted = config(tmp_path, port=9911, concurrency=2, queue=3)
    env = ServiceEnv.from_environ(wanted.environment())
    assert (env.port, env.concurrency, env.queue) == (9911, 2, 3)
    assert env.host_workspace == tmp_path / "ws"
    assert env.passthrough == ("API_KEY",)


@pytest.mark.parametrize(
    ("socket", "bound", "target", "docker_host"),
    [
        # Podman's socket lives in a folder of its own: the folder is mounted, so a new socket
        # (its API service restarted) is seen; a file mount kept the dead one (issue 10).
        (
            "/run/podman/podman.sock",
            "/run/podman",
            "/run/roscoe/engine",
            "unix:///run/roscoe/engine/podman.sock",
        ),
        (
            "/run/user/1000/podman/podman.sock",
            "/run/user/1000/podman",
            "/run/roscoe/engine",
            "unix:///run/roscoe/engine/podman.sock",
        ),
        # Docker's sits in /var/run itself: never all of it, the file alone.
        (
            "/var/run/docker.sock",
            "/var/run/docker.sock",
            "/run/roscoe/engine.sock",
            "unix:///run/roscoe/engine.sock",
        ),
    ],
)
def test_the_engine_socket_is_mounted_by_its_folder_when_it_has_one(
    tmp_path: Path, socket: str, bound: str, target: str, docker_host: str
) -> None:
    spec = config(tmp_path, engine_socket=socket).container_spec()
    assert spec.binds[bound] == (target, "rw")
    assert socket not in spec.binds or socket == bound
    assert spec.environment["DOCKER_HOST"] == docker_host


@pytest.mark.parametrize(
    ("engine_socket", "gvisor_socket", "bound", "gvisor_host"),
    [
        # Podman's gVisor service next to Podman's own socket: the folder is mounted once.
        (
            "/run/podman/podman.sock",
            "/run/podman/podman-gvisor.sock",
            None,
            "unix:///run/roscoe/engine/podman-gvisor.sock",
        ),
        # In an engine folder of its own: that folder, so a restarted service is seen.
        (
            "/var/run/docker.sock",
            "/run/podman/podman-gvisor.sock",
            ("/run/podman", "/run/roscoe/gvisor-engine"),
            "unix:///run/roscoe/gvisor-engine/podman-gvisor.sock",
        ),
        # Anywhere else: the file alone.
        (
            "/var/run/docker.sock",
            "/srv/gvisor.sock",
            ("/srv/gvisor.sock", "/run/roscoe/gvisor-engine.sock"),
            "unix:///run/roscoe/gvisor-engine.sock",
        ),
    ],
)
def test_the_gvisor_socket_is_mounted_like_the_engines(
    tmp_path: Path,
    engine_socket: str,
    gvisor_socket: str,
    bound: tuple[str, str] | None,
    gvisor_host: str,
) -> None:
    wanted = config(tmp_path, engine_socket=engine_socket, gvisor_socket=gvisor_socket)
    spec = wanted.container_spec()
    assert spec.environment["ROSCOE_GVISOR_HOST"] == gvisor_host
    engine_source = engine_socket_mount(engine_socket)[0]
    extra = {k: inside for k, (inside, _) in spec.binds.items() if k != engine_source}
    if bound is None:
        assert not any(v.startswith("/run/roscoe/gvisor") for v in extra.values())
    else:
        assert extra[bound[0]] == bound[1]


@pytest.mark.parametrize(
    ("kind", "policy", "log_config"),
    [
        ("docker", "unless-stopped", ("json-file", {"max-size": "10m", "max-file": "3"})),
        # podman-restart.service starts `always` containers only; Podman 4.3's compatible API
        # takes max-size for k8s-file and ignores max-file.
        ("podman", "always", ("k8s-file", {"max-size": "10m"})),
    ],
)
def test_back_after_an_engine_restart_with_a_capped_log(
    tmp_path: Path, kind: str, policy: str, log_config: tuple[str, dict[str, str]]
) -> None:
    spec = config(tmp_path, engine_kind=kind).container_spec()
    assert spec.restart_policy == policy
    assert (spec.log_driver, spec.log_options) == log_config


def test_service_settings_reach_the_environment(tmp_path: Path) -> None:
    wanted = config(
        tmp_path,
        service_settings={"ROSCOE_LOG_LEVEL": "debug", "ROSCOE_SERVICE_PRUNE": "true"},
    )
    env = wanted.environment()
    assert (env["ROSCOE_LOG_LEVEL"], env["ROSCOE_SERVICE_PRUNE"]) == ("debug", "true")


@pytest.mark.parametrize("keep_id", [False, True])
def test_a_rootless_podman_runner_gets_the_keep_id_user_namespace(
    tmp_path: Path, keep_id: bool
) -> None:
    """Its service then runs as the user who started it, on the host as inside: it reads the
    token and the workspace, and writes the run records, as that user."""
    spec = config(tmp_path, engine_kind="podman", keep_id=keep_id).container_spec()
    assert spec.userns == ("keep-id" if keep_id else "")


def test_the_engine_seam_sends_the_spec_in_the_engines_own_terms(tmp_path: Path) -> None:
    """Over the engine's API itself: Podman's keep-id included (the docker SDK refuses any
    user namespace but "host"), the log cap and the restart policy."""
    from roscoe.engine.engine import Engine

    sent: list[tuple[str, str, dict[str, Any], Any]] = []

    class Wire:
        def call(self, method: str, path: str, **kw: Any) -> Any:
            sent.append((method, path, kw.get("params") or {}, kw.get("body")))
            return {"Id": "c1"}

    engine = Engine.__new__(Engine)
    engine._wire = Wire()  # type: ignore[assignment]
    spec = config(tmp_path, engine_kind="podman", keep_id=True).container_spec()
    assert engine.create_container(spec) == "c1"
    ((method, path, params, body),) = sent
    assert (method, path, params) == ("POST", "/containers/create", {"name": "roscoe-runner"})
    host = body["HostConfig"]
    assert host["UsernsMode"] == "keep-id" and host["NetworkMode"] == "host"
    assert host["RestartPolicy"] == {"Name": "always"}
    assert host["LogConfig"] == {"Type": "k8s-file", "Config": {"max-size": "10m"}}
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert f"{tmp_path / 'token'}:{CONTAINER_TOKEN_FILE}:ro" in host["Binds"]
    assert body["User"] == spec.user and body["Labels"] == spec.labels
    assert "DOCKER_HOST=unix:///run/roscoe/engine.sock" in body["Env"]
