"""The runner container's definition: what `roscoe server start` asks the engine for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roscoe.runner.layout import CONTAINER_TOKEN_FILE, RunnerConfig, ServiceEnv


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
    container, host = config(tmp_path).create_arguments()
    assert host["cap_drop"] == ["ALL"] and host["read_only"] is True
    assert host["security_opt"] == ["no-new-privileges"]
    assert host["network_mode"] == "host"
    assert container["user"] != "0:0" and not container["user"].startswith("0:")
    assert host["binds"][str(tmp_path / "token")] == {"bind": CONTAINER_TOKEN_FILE, "mode": "ro"}
    assert host["binds"][str(tmp_path / "ws")]["mode"] == "ro"
    assert "ROSCOE_TOKEN" not in container["environment"]  # the token is a file, not a variable


@pytest.mark.parametrize("selinux", [True, False])
def test_selinux_hosts_relabel_mounts_and_unconfine_the_socket_holder(
    tmp_path: Path, selinux: bool
) -> None:
    _, host = config(tmp_path, selinux=selinux).create_arguments()
    assert ("label=disable" in host["security_opt"]) is selinux
    assert host["binds"][str(tmp_path / "ws")]["mode"] == ("ro,z" if selinux else "ro")


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
    container, host = config(tmp_path, engine_socket=socket).create_arguments()
    assert host["binds"][bound] == {"bind": target, "mode": "rw"}
    assert socket not in host["binds"] or socket == bound
    assert container["environment"]["DOCKER_HOST"] == docker_host


@pytest.mark.parametrize(
    ("kind", "policy", "log_config"),
    [
        (
            "docker",
            "unless-stopped",
            {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        ),
        # podman-restart.service starts `always` containers only; Podman 4.3's compatible API
        # takes max-size for k8s-file and ignores max-file.
        ("podman", "always", {"Type": "k8s-file", "Config": {"max-size": "10m"}}),
    ],
)
def test_back_after_an_engine_restart_with_a_capped_log(
    tmp_path: Path, kind: str, policy: str, log_config: dict[str, object]
) -> None:
    _, host = config(tmp_path, engine_kind=kind).create_arguments()
    assert host["restart_policy"] == {"Name": policy}
    assert host["log_config"] == log_config


def test_service_settings_reach_the_environment(tmp_path: Path) -> None:
    wanted = config(
        tmp_path,
        service_settings={"ROSCOE_LOG_LEVEL": "debug", "ROSCOE_SERVICE_PRUNE": "true"},
    )
    env = wanted.environment()
    assert (env["ROSCOE_LOG_LEVEL"], env["ROSCOE_SERVICE_PRUNE"]) == ("debug", "true")
