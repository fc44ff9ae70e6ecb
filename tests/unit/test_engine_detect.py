"""Engine detection: the order, and one precise error per failure. The world is faked at Probe."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest

from roscoe.engine.connect import engine_version, kind_from_version
from roscoe.engine.detect import Probe, known_sockets, locate, runtime_choice
from roscoe.errors import EngineError, UsageError

HOME = Path("/home/ada")


def world(
    *,
    env: dict[str, str] | None = None,
    listening: set[str] = frozenset(),  # type: ignore[assignment]
    refused: set[str] = frozenset(),  # type: ignore[assignment]
    denied: set[str] = frozenset(),  # type: ignore[assignment]
    files: dict[str, str] | None = None,
    binaries: set[str] = frozenset(),  # type: ignore[assignment]
) -> Probe:
    files = files or {}

    def connect(path: str) -> OSError | None:
        if path in listening:
            return None
        if path in refused:
            return ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        if path in denied:
            return PermissionError(errno.EACCES, "Permission denied")
        return FileNotFoundError(errno.ENOENT, "No such file or directory")

    return Probe(
        env=env or {},
        home=HOME,
        uid=1000,
        connect=connect,
        which=lambda name: f"/usr/bin/{name}" if name in binaries else None,
        read_text=lambda path: files.get(str(path)),
    )


def test_docker_host_wins_over_everything() -> None:
    probe = world(
        env={"DOCKER_HOST": "unix:///custom.sock", "CONTAINER_HOST": "unix:///podman.sock"},
        listening={"/custom.sock", "/podman.sock", "/var/run/docker.sock"},
    )
    found = locate("auto", probe)
    assert (found.url, found.source, found.explicit) == ("unix:///custom.sock", "DOCKER_HOST", True)


def test_container_host_before_context_and_sockets() -> None:
    probe = world(
        env={"CONTAINER_HOST": "unix:///p.sock"}, listening={"/p.sock", "/var/run/docker.sock"}
    )
    assert locate("auto", probe).source == "CONTAINER_HOST"


def test_container_host_is_ignored_when_docker_is_asked_for() -> None:
    probe = world(env={"CONTAINER_HOST": "unix:///p.sock"}, listening={"/var/run/docker.sock"})
    found = locate("docker", probe)
    assert (found.url, found.source) == ("unix:///var/run/docker.sock", "probed socket")


def test_docker_context_in_use_is_followed() -> None:
    meta = HOME / ".docker/contexts/meta" / hashlib.sha256(b"colima").hexdigest() / "meta.json"
    probe = world(
        files={
            str(HOME / ".docker/config.json"): json.dumps({"currentContext": "colima"}),
            str(meta): json.dumps({"Endpoints": {"docker": {"Host": "unix:///c.sock"}}}),
        },
        listening={"/c.sock", "/var/run/docker.sock"},
    )
    found = locate("auto", probe)
    assert (found.url, found.source) == ("unix:///c.sock", "docker context 'colima'")


def test_docker_context_env_overrides_config_and_default_means_none() -> None:
    probe = world(
        env={"DOCKER_CONTEXT": "default"},
        files={str(HOME / ".docker/config.json"): json.dumps({"currentContext": "gone"})},
        listening={"/var/run/docker.sock"},
    )
    assert locate("auto", probe).source == "probed socket"


def test_broken_context_is_an_error_not_a_silent_fallback() -> None:
    probe = world(
        files={str(HOME / ".docker/config.json"): json.dumps({"currentContext": "gone"})},
        listening={"/var/run/docker.sock"},
    )
    with pytest.raises(EngineError, match="context 'gone'"):
        locate("auto", probe)


def test_probes_docker_then_podman_sockets_in_order() -> None:
    probe = world(listening={"/run/podman/podman.sock", f"{HOME}/.colima/default/docker.sock"})
    found = locate("auto", probe)
    assert found.url == f"unix://{HOME}/.colima/default/docker.sock"
    assert not found.explicit
    assert locate("podman", probe).url == "unix:///run/podman/podman.sock"


def test_rootless_sockets_use_xdg_runtime_dir() -> None:
    probe = world(env={"XDG_RUNTIME_DIR": "/run/user/1000"})
    paths = [path for _, path in known_sockets(probe, "auto")]
    assert "/run/user/1000/docker.sock" in paths
    assert "/run/user/1000/podman/podman.sock" in paths
    assert f"{HOME}/.orbstack/run/docker.sock" in paths
    assert paths.index("/var/run/docker.sock") < paths.index("/run/podman/podman.sock")


def test_docker_host_unreachable_names_the_socket_and_variable() -> None:
    probe = world(
        env={"DOCKER_HOST": "unix:///nonexistent.sock"}, listening={"/var/run/docker.sock"}
    )
    with pytest.raises(EngineError) as caught:
        locate("auto", probe)
    assert "/nonexistent.sock" in caught.value.message
    assert "DOCKER_HOST" in caught.value.message
    assert caught.value.exit_code == 3


def test_permission_denied_gets_the_docker_group_hint() -> None:
    probe = world(denied={"/var/run/docker.sock"})
    with pytest.raises(EngineError) as caught:
        locate("auto", probe)
    assert "permission denied" in caught.value.message
    assert "docker group" in (caught.value.hint or "")


def test_socket_present_but_refused_means_not_running() -> None:
    probe = world(refused={"/run/user/1000/podman/podman.sock"})
    with pytest.raises(EngineError) as caught:
        locate("auto", probe)
    assert "not running" in caught.value.message
    assert "systemctl --user enable --now podman.socket" in (caught.value.hint or "")


def test_installed_but_no_socket_says_start_it() -> None:
    probe = world(binaries={"podman"})
    with pytest.raises(EngineError) as caught:
        locate("auto", probe)
    assert "podman is installed but its engine is not running" in caught.value.message
    assert "podman.socket" in (caught.value.hint or "")


def test_nothing_installed_lists_what_was_tried_and_how_to_install() -> None:
    with pytest.raises(EngineError) as caught:
        locate("auto", world())
    assert "no container engine found" in caught.value.message
    assert "/var/run/docker.sock" in caught.value.message
    assert "install Docker" in (caught.value.hint or "")


def test_runtime_choice_flag_env_default_and_bad_value() -> None:
    assert runtime_choice(None, {}) == "auto"
    assert runtime_choice(None, {"ROSCOE_RUNTIME": "Podman"}) == "podman"
    assert runtime_choice("docker", {"ROSCOE_RUNTIME": "podman"}) == "docker"
    with pytest.raises(UsageError):
        runtime_choice("containerd", {})


PODMAN_VERSION = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}],
    "Version": "4.3.1",
    "ApiVersion": "1.41",
}
DOCKER_VERSION = {
    "Platform": {"Name": "Docker Engine - Community"},
    "Components": [
        {"Name": "Engine", "Version": "20.10.24"},
        {"Name": "containerd", "Version": "1.6.20"},
    ],
    "Version": "20.10.24",
    "ApiVersion": "1.41",
}


def test_kind_comes_from_what_the_engine_says() -> None:
    assert kind_from_version(PODMAN_VERSION) == "podman"
    assert kind_from_version(DOCKER_VERSION) == "docker"
    assert engine_version(PODMAN_VERSION, "podman") == "4.3.1"
    assert engine_version(DOCKER_VERSION, "docker") == "20.10.24"


def test_permission_denied_on_podman_socket_does_not_suggest_the_docker_group() -> None:
    probe = world(denied={"/run/podman/podman.sock"})
    with pytest.raises(EngineError) as caught:
        locate("podman", probe)
    assert "/run/podman/podman.sock" in caught.value.message
    assert "docker group" not in (caught.value.hint or "")
    assert "podman.socket" in (caught.value.hint or "")


def test_named_socket_refusing_reads_as_one_sentence() -> None:
    probe = world(env={"DOCKER_HOST": "unix:///srv/d.sock"}, refused={"/srv/d.sock"})
    with pytest.raises(EngineError) as caught:
        locate("auto", probe)
    assert caught.value.message == (
        "the engine is not running: nothing answers on /srv/d.sock (from DOCKER_HOST)"
    )


def test_missing_context_socket_hints_at_switching_context() -> None:
    meta = HOME / ".docker/contexts/meta" / hashlib.sha256(b"colima").hexdigest() / "meta.json"
    probe = world(
        env={"DOCKER_CONTEXT": "colima"},
        files={str(meta): json.dumps({"Endpoints": {"docker": {"Host": "unix:///gone.sock"}}})},
    )
    with pytest.raises(EngineError) as caught:
        locate("auto", probe)
    assert (
        caught.value.message == "docker context 'colima' points to /gone.sock, which does not exist"
    )
    assert "docker context use default" in (caught.value.hint or "")
