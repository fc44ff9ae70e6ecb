"""How the runner container is laid out, shared by the side that starts it and the service in it.

`roscoe server start` (host side) turns a RunnerConfig into the engine's create arguments;
the execution service (container side) reads the same environment variables back with
`ServiceEnv.from_environ()`. Change both sides here, in one place.

Why these choices:
- The service launches one-shot runs as SIBLING containers through the engine socket, and the
  engine resolves bind mounts on the HOST, so the service must know the host path of the
  workspace (ROSCOE_HOST_WORKSPACE) and maps its own view (/workspace) onto it.
- Run records go to the host's <data dir>/runs, mounted into the container, so `roscoe runs
  list` on the host shows runs from both the CLI and the service. A run's container mounts a
  folder of its run's (the launcher's report), so the service knows that dir's host path too
  (ROSCOE_HOST_RUNS_DIR).
- The token reaches the service as a read-only file mount, never as an environment variable
  (those show up in `inspect`).
- Host networking with the service bound to 127.0.0.1: reachable from the host only.
- The run defaults (ROSCOE_TIMEOUT, _MEMORY, _CPUS, _NETWORK) are resolved on the host and
  handed over in the environment: the host's config file is not in the container.
- A digest of the whole environment goes into a label (LABEL_CONFIG_HASH): `server start`
  replaces a runner whose settings differ from those asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from roscoe import __version__
from roscoe.config.settings import (
    ENV_DATA_DIR,
    ENV_HOST_RUNS_DIR,
    ENV_HOST_WORKSPACE,
    ENV_PASSTHROUGH,
    ENV_SHUTDOWN_GRACE,
    ENV_TOKEN_FILE,
    ENV_TOKENS_FILE,
    SHUTDOWN_GRACE_S,
    default,
    env_name,
    from_environment,
)
from roscoe.engine.protocols import ContainerSpec
from roscoe.labels import (
    LABEL_CONFIG_HASH,
    LABEL_IMAGE_VERSION,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_VERSION,
    MANAGED_BY_VALUE,
)
from roscoe.runs.host import container_user

# Inside the runner container.
CONTAINER_WORKSPACE = "/workspace"
CONTAINER_DATA_DIR = "/var/lib/roscoe"  # ROSCOE_DATA_DIR of the service; runs/ is the host's
CONTAINER_TOKEN_FILE = "/run/roscoe/token"  # noqa: S105 - a path, not a secret
CONTAINER_ENGINE_SOCKET = "/run/roscoe/engine.sock"  # the socket file, mounted by itself
CONTAINER_ENGINE_DIR = "/run/roscoe/engine"  # or the socket's folder, mounted whole
# A bind mount of a socket FILE keeps the file the engine had when the runner started: when
# the engine's API service restarts (Podman's, which its containers outlive) it makes a new
# socket, and the runner could no longer reach it while it went on answering /health. A
# folder mount shows the new socket. Only a folder of the engine's own is mounted (never
# all of /run for Docker's /var/run/docker.sock); readiness (/health?engine=1) covers the rest.
ENGINE_SOCKET_FOLDERS = ("podman", "docker")
# The scoped tokens' folder (a folder, not the file: a file replaced by a rename would stay
# the old one inside a file mount, and revoking must count at once).
CONTAINER_ACCESS_DIR = "/run/roscoe/access"
TOKENS_FILE_NAME = "tokens.json"
CONTAINER_GVISOR_SOCKET = "/run/roscoe/gvisor-engine.sock"  # run.gvisor_host's socket
CONTAINER_GVISOR_DIR = "/run/roscoe/gvisor-engine"  # or its folder (as for the engine's)

# The runner container's environment: the settings' variables, and those that are not
# settings (config/settings.py names them all).
ENV_PORT = env_name("port")
ENV_WORKSPACE = env_name("workspace")
ENV_RUNNER_IMAGE = env_name("image")
ENV_RUNTIME = env_name("engine")
ENV_CONCURRENCY = env_name("service.concurrency")
ENV_QUEUE = env_name("service.queue")
ENV_PROJECTS_DIR = env_name("projects_dir")
ENV_TOOLS_DIR = env_name("tools_dir")
# Its own name: the service looks itself up by it, to tie its runs to its container id.
ENV_CONTAINER_NAME = env_name("container_name")
ENV_GVISOR_HOST = env_name("run.gvisor_host")
# After the grace, the service cancels what still runs and waits for those containers to be
# stopped and removed; `server stop` must wait at least this much longer before SIGKILL.
CANCEL_MARGIN_S = 20.0

# The runner's container log, capped by the engine (see RunnerConfig.log_config).
LOG_MAX_SIZE = "10m"
LOG_MAX_FILES = 3


@dataclass
class RunnerConfig:
    """Everything `roscoe server start` decides about the runner container (host side)."""

    image: str
    name: str
    port: int
    workspace: Path  # on the host
    runs_dir: Path  # on the host
    token_file: Path  # on the host
    engine_socket: str  # host path of the engine socket roscoe is using
    engine_kind: str  # "docker" or "podman"
    image_version: str = "unknown"
    concurrency: int = default("service.concurrency")
    queue: int = default("service.queue")
    projects_dir: str = default("projects_dir")
    tools_dir: str = default("tools_dir")
    env: dict[str, str] = field(default_factory=dict)  # -e passthrough
    # ROSCOE_TIMEOUT/MEMORY/CPUS/NETWORK as resolved on the host (the service's run defaults)
    run_limits: dict[str, str] = field(default_factory=dict)
    # host path of run.gvisor_host's socket: the engine whose runs are under gVisor (Podman)
    gvisor_socket: str | None = None
    # ROSCOE_LOG_LEVEL and the retention settings, as resolved on the host
    service_settings: dict[str, str] = field(default_factory=dict)
    config_hash: str = ""  # digest of environment(), for the label
    selinux: bool = False
    shutdown_grace: float = SHUTDOWN_GRACE_S
    access_dir: Path | None = None  # on the host: the scoped tokens' folder, mounted read-only
    # A rootless Podman: the runner gets the keep-id user namespace, so the service runs as
    # the user who started it (its uid inside is the user's on the host) and reads the token
    # and workspace and writes the run records as that user, as one-shot runs do.
    keep_id: bool = False

    def stop_timeout(self) -> float:
        """How long `server stop` should wait after SIGTERM: the grace plus the cancel margin."""
        return self.shutdown_grace + CANCEL_MARGIN_S

    def labels(self) -> dict[str, str]:
        labels = {
            LABEL_MANAGED_BY: MANAGED_BY_VALUE,
            LABEL_KIND: "server",
            LABEL_VERSION: __version__,
            LABEL_IMAGE_VERSION: self.image_version,
        }
        if self.config_hash:
            labels[LABEL_CONFIG_HASH] = self.config_hash
        return labels

    def environment(self) -> dict[str, str]:
        env = dict(self.env)
        env.update(self.run_limits)
        env.update(self.service_settings)
        env.update(
            {
                ENV_PORT: str(self.port),
                ENV_WORKSPACE: CONTAINER_WORKSPACE,
                ENV_HOST_WORKSPACE: str(self.workspace),
                ENV_HOST_RUNS_DIR: str(self.runs_dir),
                ENV_DATA_DIR: CONTAINER_DATA_DIR,
                ENV_TOKEN_FILE: CONTAINER_TOKEN_FILE,
                ENV_RUNNER_IMAGE: self.image,
                ENV_RUNTIME: self.engine_kind,
                ENV_CONCURRENCY: str(self.concurrency),
                ENV_QUEUE: str(self.queue),
                ENV_PROJECTS_DIR: self.projects_dir,
                ENV_TOOLS_DIR: self.tools_dir,
                ENV_PASSTHROUGH: ",".join(sorted(self.env)),
                ENV_SHUTDOWN_GRACE: f"{self.shutdown_grace:g}",
                ENV_CONTAINER_NAME: self.name,
                "DOCKER_HOST": f"unix://{engine_socket_mount(self.engine_socket)[2]}",
            }
        )
        if self.access_dir is not None:
            env[ENV_TOKENS_FILE] = f"{CONTAINER_ACCESS_DIR}/{TOKENS_FILE_NAME}"
        gvisor = self._gvisor_mount()
        if gvisor is not None:
            env[ENV_GVISOR_HOST] = f"unix://{gvisor[2]}"
        return env

    def _gvisor_mount(self) -> tuple[str, str, str] | None:
        """run.gvisor_host's socket as engine_socket_mount() gives it: its folder when that is
        an engine's own (a restarted gVisor service makes a new socket there too), and no
        second mount when it shares the engine socket's folder (Podman's /run/podman)."""
        if not self.gvisor_socket:
            return None
        engine = engine_socket_mount(self.engine_socket)
        source, target, inside = engine_socket_mount(
            self.gvisor_socket, CONTAINER_GVISOR_DIR, CONTAINER_GVISOR_SOCKET
        )
        if target == CONTAINER_GVISOR_DIR and source == engine[0]:
            return engine[0], engine[1], f"{engine[1]}/{PurePosixPath(inside).name}"
        return source, target, inside

    def binds(self) -> dict[str, tuple[str, str]]:
        """host path: (path in the runner, mode)."""
        relabel = ",z" if self.selinux else ""
        source, target, _ = engine_socket_mount(self.engine_socket)
        binds = {
            source: (target, "rw"),
            str(self.workspace): (CONTAINER_WORKSPACE, "ro" + relabel),
            str(self.runs_dir): (f"{CONTAINER_DATA_DIR}/runs", "rw" + relabel),
            str(self.token_file): (CONTAINER_TOKEN_FILE, "ro" + relabel),
            **(
                {str(self.access_dir): (CONTAINER_ACCESS_DIR, "ro" + relabel)}
                if self.access_dir is not None
                else {}
            ),
        }
        gvisor = self._gvisor_mount()
        if gvisor is not None and gvisor[0] != source:
            binds[gvisor[0]] = (gvisor[1], "rw")
        return binds

    def group_add(self) -> list[str]:
        """The sockets' groups, so the unprivileged service may use 0660 engine sockets."""
        groups: list[str] = []
        for socket_path in (self.engine_socket, self.gvisor_socket):
            try:
                group = str(os.stat(socket_path).st_gid) if socket_path else None
            except OSError:
                group = None
            if group is not None and group not in groups:
                groups.append(group)
        return groups

    def restart_policy(self) -> str:
        """Back after the engine restarts (and so after a reboot), with no roscoe command.

        Docker brings back `unless-stopped` containers when dockerd starts. Podman has no
        daemon: podman-restart.service runs `podman start --all --filter
        restart-policy=always` at boot, which starts `always` containers only.
        """
        return "always" if self.engine_kind == "podman" else "unless-stopped"

    def log_config(self) -> tuple[str, dict[str, str]]:
        """The engine caps the runner's log (the service may run for months): its log driver
        and the driver's options.

        Docker rotates json-file logs (LOG_MAX_FILES files of LOG_MAX_SIZE); Podman 4.3's
        compatible API takes max-size for its k8s-file log (when the cap is reached, the file
        starts over) and ignores max-file.
        """
        if self.engine_kind == "podman":
            return "k8s-file", {"max-size": LOG_MAX_SIZE}
        return "json-file", {"max-size": LOG_MAX_SIZE, "max-file": str(LOG_MAX_FILES)}

    def container_spec(self) -> ContainerSpec:
        """The runner container, as the engine seam takes it."""
        uid, gid = container_user()
        log_driver, log_options = self.log_config()
        return ContainerSpec(
            image=self.image,
            name=self.name,
            user=f"{uid}:{gid}",
            environment=self.environment(),
            labels=self.labels(),
            binds=self.binds(),
            network="host",
            restart_policy=self.restart_policy(),
            log_driver=log_driver,
            log_options=log_options,
            group_add=self.group_add(),
            cap_drop=["ALL"],
            # On SELinux hosts the container policy forbids connecting to the engine socket
            # (a socket cannot be relabelled with :z); a container that holds the engine
            # socket is root-equivalent anyway, so its label confinement is turned off.
            security_opt=["no-new-privileges", *(["label=disable"] if self.selinux else [])],
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},  # noqa: S108 - the container's own /tmp
            # Rootless Podman: the service runs as the user who started it, inside as outside.
            userns="keep-id" if self.keep_id else "",
        )


def engine_socket_mount(
    host_socket: str,
    folder_target: str = CONTAINER_ENGINE_DIR,
    file_target: str = CONTAINER_ENGINE_SOCKET,
) -> tuple[str, str, str]:
    """(what to bind-mount from the host, where in the runner, the socket's path there)."""
    path = PurePosixPath(host_socket)
    if path.parent.name in ENGINE_SOCKET_FOLDERS:
        return str(path.parent), folder_target, f"{folder_target}/{path.name}"
    return host_socket, file_target, file_target


@dataclass(frozen=True)
class ServiceEnv:
    """The runner container's environment as the service reads it (container side)."""

    port: int
    workspace: Path
    host_workspace: Path
    token_file: Path
    runner_image: str
    concurrency: int
    queue: int
    projects_dir: str
    tools_dir: str
    passthrough: tuple[str, ...]
    shutdown_grace: float = SHUTDOWN_GRACE_S
    tokens_file: Path | None = None  # the scoped tokens, when the runner was given them

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServiceEnv:
        """Read back what RunnerConfig.environment() wrote; UsageError (2) for a bad value."""
        env = os.environ if environ is None else environ
        workspace = Path(env.get(ENV_WORKSPACE) or CONTAINER_WORKSPACE)
        grace = env.get(ENV_SHUTDOWN_GRACE)
        return cls(
            port=from_environment("port", env),
            workspace=workspace,
            host_workspace=Path(env.get(ENV_HOST_WORKSPACE) or workspace),
            token_file=Path(env.get(ENV_TOKEN_FILE) or CONTAINER_TOKEN_FILE),
            runner_image=env.get(ENV_RUNNER_IMAGE, ""),
            concurrency=from_environment("service.concurrency", env),
            queue=from_environment("service.queue", env),
            projects_dir=from_environment("projects_dir", env),
            tools_dir=from_environment("tools_dir", env),
            passthrough=tuple(n for n in env.get(ENV_PASSTHROUGH, "").split(",") if n),
            shutdown_grace=float(grace) if grace else SHUTDOWN_GRACE_S,
            tokens_file=Path(env[ENV_TOKENS_FILE]) if env.get(ENV_TOKENS_FILE) else None,
        )
