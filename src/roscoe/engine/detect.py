"""Find the container engine's endpoint, and say precisely why when there is none.

The order (README, "Which engine roscoe uses"):
  1. --runtime / ROSCOE_RUNTIME chooses the family: docker, podman or auto (default);
  2. DOCKER_HOST;  3. CONTAINER_HOST (podman's own variable);
  4. the docker context in use (DOCKER_CONTEXT, else currentContext in ~/.docker/config.json);
  5. the well-known sockets of Docker and Podman, rootful and rootless, Linux and macOS.
An endpoint the user named (2-4) is never silently skipped: if it does not answer, that is
the error. Probed sockets (5) are tried in order and the first that answers wins.

Nothing here imports the docker SDK: detection runs on every command, including the hot
path of `roscoe run`, and must stay cheap. Everything that touches the outside world
(environment, files, sockets) goes through `Probe`, the seam unit tests replace.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from roscoe.errors import EngineError

RUNTIMES = ("auto", "docker", "podman")


@dataclass(frozen=True)
class Endpoint:
    """Where the engine API lives and how roscoe came to choose it."""

    url: str  # unix:///path or tcp://host:port
    source: str  # e.g. "DOCKER_HOST", "docker context 'colima'", "probed socket"
    explicit: bool = True  # named by the user (flag, env, context) rather than probed
    family: str | None = None  # the family the socket belongs to when known from the list

    @property
    def socket_path(self) -> str | None:
        if self.url.startswith("unix://"):
            return self.url[len("unix://") :]
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _try_connect(path: str) -> OSError | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(path)
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


@dataclass
class Probe:
    """The outside world as detection sees it. Unit tests pass their own."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    home: Path = field(default_factory=Path.home)
    uid: int = field(default_factory=os.getuid)
    # Returns None when something accepts connections at the path, else the OSError.
    connect: Callable[[str], OSError | None] = field(default=_try_connect)
    which: Callable[[str], str | None] = field(default=shutil.which)
    read_text: Callable[[Path], str | None] = field(default=_read_text)


def runtime_choice(flag: str | None, env: Mapping[str, str]) -> str:
    """The family asked for: the flag, else ROSCOE_RUNTIME, else auto."""
    value = (flag or env.get("ROSCOE_RUNTIME") or "auto").strip().lower()
    if value not in RUNTIMES:
        from roscoe.errors import UsageError

        raise UsageError(
            f"unknown runtime '{value}'",
            hint="use --runtime docker, --runtime podman or --runtime auto",
        )
    return value


def known_sockets(probe: Probe, runtime: str) -> list[tuple[str, str]]:
    """(family, path) of the sockets engines usually listen on, most common first."""
    home = probe.home
    xdg = probe.env.get("XDG_RUNTIME_DIR") or f"/run/user/{probe.uid}"
    tmpdir = probe.env.get("TMPDIR", "/tmp").rstrip("/")  # noqa: S108 - a path to look at, not to write
    docker = [
        "/var/run/docker.sock",
        f"{xdg}/docker.sock",  # rootless Docker
        f"{home}/.docker/run/docker.sock",  # Docker Desktop (macOS)
        f"{home}/.docker/desktop/docker.sock",  # Docker Desktop (Linux)
        f"{home}/.colima/default/docker.sock",
        f"{home}/.orbstack/run/docker.sock",
        f"{home}/.rd/docker.sock",  # Rancher Desktop
    ]
    podman = [
        f"{xdg}/podman/podman.sock",  # rootless (systemctl --user enable --now podman.socket)
        "/run/podman/podman.sock",  # rootful
        f"{home}/.local/share/containers/podman/machine/podman.sock",  # podman machine
        f"{home}/.local/share/containers/podman/machine/podman-machine-default/podman.sock",
        f"{tmpdir}/podman/podman-machine-default-api.sock",  # podman machine (macOS)
    ]
    found: list[tuple[str, str]] = []
    if runtime in ("auto", "docker"):
        found += [("docker", p) for p in docker]
    if runtime in ("auto", "podman"):
        found += [("podman", p) for p in podman]
    seen: set[str] = set()
    unique = []
    for family, path in found:
        if path not in seen:
            seen.add(path)
            unique.append((family, path))
    return unique


def docker_context_endpoint(probe: Probe) -> Endpoint | None:
    """The endpoint of the docker context in use, if it is not the default one."""
    config_dir = Path(probe.env.get("DOCKER_CONFIG") or probe.home / ".docker")
    name = probe.env.get("DOCKER_CONTEXT")
    if not name:
        raw = probe.read_text(config_dir / "config.json")
        if raw:
            try:
                name = json.loads(raw).get("currentContext")
            except (ValueError, AttributeError):
                name = None
    if not name or name == "default":
        return None
    import hashlib  # only for a named context: loading OpenSSL costs every run ~3 ms

    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_raw = probe.read_text(config_dir / "contexts" / "meta" / digest / "meta.json")
    host = None
    if meta_raw:
        try:
            host = json.loads(meta_raw)["Endpoints"]["docker"]["Host"]
        except (ValueError, KeyError, TypeError):
            host = None
    if not host:
        raise EngineError(
            f"docker context '{name}' is in use but has no readable endpoint",
            hint="run `docker context use default` or `docker context ls` to pick a valid one",
        )
    return Endpoint(url=host, source=f"docker context '{name}'")


def explicit_endpoints(probe: Probe, runtime: str) -> list[Endpoint]:
    """Endpoints the user named, in precedence order."""
    found = []
    if probe.env.get("DOCKER_HOST"):
        found.append(Endpoint(url=probe.env["DOCKER_HOST"], source="DOCKER_HOST"))
    if runtime != "docker" and probe.env.get("CONTAINER_HOST"):
        found.append(Endpoint(url=probe.env["CONTAINER_HOST"], source="CONTAINER_HOST"))
    if runtime != "podman":
        context = docker_context_endpoint(probe)
        if context:
            found.append(context)
    return found


def check_explicit(endpoint: Endpoint, probe: Probe) -> None:
    """Fail with a precise error if a user-named unix socket cannot be reached."""
    path = endpoint.socket_path
    if path is None:
        return  # tcp:// and friends are checked when the client connects
    problem = probe.connect(path)
    if problem is not None:
        raise socket_error(path, problem, named_by=endpoint.source)


def socket_error(path: str, problem: OSError, named_by: str | None = None) -> EngineError:
    """Turn a failed connect into the one error a user can act on."""
    where = f"{path} (from {named_by})" if named_by else path
    if isinstance(problem, PermissionError) or problem.errno in (errno.EACCES, errno.EPERM):
        if "podman" in path:
            hint = (
                "use your own rootless socket (`systemctl --user enable --now podman.socket`), "
                "or get access to this one (podman.socket serves it 0660 to its group)"
            )
        else:
            hint = (
                "add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in "
                "again) or use rootless Docker or Podman"
            )
        return EngineError(f"permission denied on the engine socket {where}", hint=hint)
    if isinstance(problem, FileNotFoundError) or problem.errno == errno.ENOENT:
        if named_by:
            return EngineError(
                f"{named_by} points to {path}, which does not exist",
                hint=_unset_hint(named_by),
            )
        return EngineError(f"no engine socket at {path}")
    if isinstance(problem, ConnectionRefusedError) or problem.errno == errno.ECONNREFUSED:
        return EngineError(
            f"the engine is not running: nothing answers on {where}",
            hint=_start_hint(path),
        )
    return EngineError(f"cannot reach the engine at {where}: {problem.strerror or problem}")


def _unset_hint(named_by: str) -> str:
    if named_by.startswith("docker context"):
        return "start that engine, or switch context: `docker context use default`"
    return f"start the engine that should listen there, or unset {named_by}"


def _start_hint(path: str) -> str:
    if "podman" in path:
        return (
            "start Podman's API socket: `systemctl --user enable --now podman.socket` "
            "(rootless) or `sudo systemctl enable --now podman.socket`"
        )
    return "start Docker: `sudo systemctl start docker`, or open Docker Desktop / Colima / OrbStack"


def locate(runtime: str, probe: Probe) -> Endpoint:
    """Choose the endpoint to use, or raise the EngineError that explains why there is none."""
    explicit = explicit_endpoints(probe, runtime)
    if explicit:
        check_explicit(explicit[0], probe)
        return explicit[0]

    tried: list[str] = []
    not_running: list[str] = []
    denied: list[tuple[str, OSError]] = []
    for family, path in known_sockets(probe, runtime):
        problem = probe.connect(path)
        if problem is None:
            return Endpoint(
                url=f"unix://{path}", source="probed socket", explicit=False, family=family
            )
        tried.append(path)
        if isinstance(problem, PermissionError):
            denied.append((path, problem))
        elif isinstance(problem, ConnectionRefusedError):
            not_running.append(path)
    if denied:
        raise socket_error(denied[0][0], denied[0][1])
    if not_running:
        raise socket_error(not_running[0], ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    raise no_engine_error(runtime, probe, tried)


def no_engine_error(runtime: str, probe: Probe, tried: list[str]) -> EngineError:
    families = ["docker", "podman"] if runtime == "auto" else [runtime]
    installed = [name for name in families if probe.which(name) or probe.which(f"{name}d")]
    shown = ", ".join(tried[:4]) + (f" and {len(tried) - 4} more" if len(tried) > 4 else "")
    if installed:
        name = installed[0]
        hint = (
            "start it: `systemctl --user enable --now podman.socket` (rootless) or "
            "`sudo systemctl enable --now podman.socket`"
            if name == "podman"
            else "start it: `sudo systemctl start docker`, or open Docker Desktop"
        )
        return EngineError(
            f"{name} is installed but its engine is not running (tried {shown})", hint
        )
    return EngineError(
        "no container engine found (tried DOCKER_HOST, CONTAINER_HOST, the docker context, "
        f"{shown})",
        hint="install Docker (https://docs.docker.com/engine/install/) or Podman "
        "(https://podman.io/docs/installation), or set DOCKER_HOST",
    )
