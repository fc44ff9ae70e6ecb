"""What `roscoe server start` will do, resolved before the engine is touched: name, port,
workspace, image, run limits, and the runner container's shape with its config hash."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.config.settings import SHUTDOWN_GRACE_S
from roscoe.errors import UsageError
from roscoe.images.choice import PULL_POLICIES
from roscoe.runner import container as runner
from roscoe.runner.layout import CANCEL_MARGIN_S, RunnerConfig
from roscoe.runner.store import StartSettings

if TYPE_CHECKING:
    from roscoe.config.settings import Settings
    from roscoe.engine.protocols import RunEngine, RunnerEngine
    from roscoe.images.choice import ImageChoice
    from roscoe.runs.isolation import Connect


# SIGTERM to SIGKILL: the service's grace for its runs, plus the time it takes to cancel
# and remove what still runs after it (runner.layout).
DEFAULT_STOP_TIMEOUT = SHUTDOWN_GRACE_S + CANCEL_MARGIN_S
DEFAULT_WAIT_TIMEOUT = 60.0


@dataclass
class StartPlan:
    """Everything resolved before the engine is touched."""

    name: str
    port: int
    workspace: Path
    image: ImageChoice
    settings: StartSettings
    concurrency: int
    queue: int
    projects_dir: str
    tools_dir: str
    run_limits: dict[str, str]  # ROSCOE_TIMEOUT/MEMORY/CPUS/NETWORK/ISOLATION for its runs
    isolation: str = "runc"
    gvisor_host: str | None = None  # run.gvisor_host, mounted into the runner (unix:// only)
    # ROSCOE_LOG_LEVEL, the retention (ROSCOE_SERVICE_PRUNE, ROSCOE_RUNS_*) for the service
    service_settings: dict[str, str] = field(default_factory=dict)


def plan_start(settings: Settings, wanted: StartSettings) -> StartPlan:
    """Resolve name, port, workspace and image through Settings (flag > env > config)."""
    from roscoe.images.choice import choose_image
    from roscoe.runs.workspace import Workspace

    if wanted.pull not in PULL_POLICIES:
        raise UsageError(
            f"--pull {wanted.pull}: not a pull policy", hint="use missing, always or never"
        )
    # The data dir first, private: the token and the runs dir inside it may be handed to
    # uid 1000; 0700 keeps every other host user out all the same.
    paths.ensure_data_dir()
    workspace = Workspace.from_settings(settings, wanted.workspace)
    port = settings.get("port", wanted.port)
    if port < UNPRIVILEGED_PORTS:
        raise UsageError(
            f"port {port} is privileged: the runner has no capabilities and cannot listen on "
            "a port below 1024",
            hint="choose a port from 1024 to 65535 with --port or ROSCOE_PORT",
        )
    return StartPlan(
        name=settings.get("container_name"),
        port=port,
        workspace=workspace.root,
        image=choose_image(settings, wanted.image, wanted.use_local_image),
        settings=wanted,
        concurrency=settings.get("service.concurrency"),
        queue=settings.get("service.queue"),
        projects_dir=settings.get("projects_dir"),
        tools_dir=settings.get("tools_dir"),
        run_limits=run_limits(settings),
        isolation=settings.get("run.isolation"),
        gvisor_host=gvisor_host(settings),
        service_settings=service_settings(settings, wanted.log_level),
    )


RUN_LIMIT_KEYS = (
    "run.timeout",
    "run.memory",
    "run.cpus",
    "run.network",
    "run.track_changes",
    "run.isolation",
)
UNPRIVILEGED_PORTS = 1024


SERVICE_KEYS = (
    "service.log_level",
    "service.prune",
    "runs.older_than",
    "runs.keep",
    "runs.max_size",
)


def run_limits(settings: Settings) -> dict[str, str]:
    """The run defaults resolved here (env > config > default), as the service's environment.

    The service reads them with its own Settings; neither the host's environment nor its
    config file reaches the container, so they are handed over explicitly.
    """
    return _as_environment(settings, RUN_LIMIT_KEYS)


def service_settings(settings: Settings, log_level: str | None = None) -> dict[str, str]:
    """The service's log level (--log-level first) and its retention, handed over likewise."""
    return _as_environment(settings, SERVICE_KEYS, {"service.log_level": log_level})


def _as_environment(
    settings: Settings, keys: tuple[str, ...], flags: Mapping[str, Any] | None = None
) -> dict[str, str]:
    from roscoe.config.settings import SETTINGS

    found: dict[str, str] = {}
    for key in keys:
        value = settings.get(key, (flags or {}).get(key))
        name = SETTINGS[key].env
        if value is None or name is None:
            continue  # no CPU limit, no retention: the service's default is none as well
        if isinstance(value, bool):
            found[name] = "true" if value else "false"
        else:
            found[name] = f"{value:g}" if isinstance(value, float) else str(value)
    return found


def gvisor_host(settings: Settings) -> str | None:
    """run.gvisor_host, which the runner reaches through a bind mount of its socket."""
    url: str | None = settings.get("run.gvisor_host")
    if url is None or url.startswith("unix://"):
        return url
    raise UsageError(
        f"run.gvisor_host is {url}: the runner reaches gVisor's engine only through a unix "
        "socket on this machine",
        hint="point ROSCOE_GVISOR_HOST at a unix:// socket (docs/usage.md, Isolation)",
    )


def check_isolation(engine: RunEngine, settings: Settings, connect: Connect | None) -> None:
    """The service's runs can be had under run.isolation; else IsolationError (5). Checked
    before `server start` (or `restart`) changes anything.

    The runner itself always runs under the engine's usual runtime: under gVisor its host
    networking would be the sandbox's own loopback, out of the host's reach.
    """
    from roscoe.runs.isolation import place

    isolation = settings.get("run.isolation")
    place(engine, isolation, gvisor_host(settings), connect, thorough=True).close()


def check_wait_timeout(wait_timeout: float) -> None:
    if not wait_timeout > 0:
        raise UsageError(
            f"--wait-timeout {wait_timeout:g}: must be more than 0 seconds",
            hint=f"the default is {DEFAULT_WAIT_TIMEOUT:g}",
        )


def check_stop_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:
        raise UsageError(
            f"--timeout {timeout:g}: must be 0 (kill at once) or more seconds",
        )


def config_hash(environment: Mapping[str, str]) -> str:
    """A digest of the runner's whole environment, for its label: values never in clear.

    Keyed with the service token, so a short -e value cannot be guessed from the label by
    trying candidates.
    """
    from roscoe.runner.token import read_token

    try:
        key = read_token(paths.token_file()).encode("utf-8")
    except Exception:  # no token yet: it is created before the container
        key = b""
    text = json.dumps(dict(sorted(environment.items())), separators=(",", ":"))
    return "hmac-sha256:" + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def build_config(engine: RunnerEngine, plan: StartPlan, image: dict[str, Any]) -> RunnerConfig:
    """The runner container as it would be created; prepares the token, the scoped tokens'
    folder and the runs dir."""
    from roscoe.access.tokens import ensure_readable_by_service
    from roscoe.runner.token import ensure_token
    from roscoe.runs.host import container_user, selinux_enforcing

    root = os.getuid() == 0
    owner = container_user() if root else None
    token_file = paths.token_file()
    ensure_token(token_file, owner=owner)
    access = ensure_readable_by_service()
    runs = paths.ensure_dir(paths.runs_dir())
    if owner is not None:
        # The service runs as uid 1000 under a root roscoe: it writes run records here.
        # The data dir above stays 0700 root, so other host users still cannot reach them.
        os.chown(runs, *owner)
    socket_path = engine.endpoint.socket_path
    if socket_path is None:
        raise UsageError(
            f"the runner needs the engine's unix socket, but roscoe reaches {engine.kind} at "
            f"{engine.endpoint.url}",
            hint="point DOCKER_HOST at a unix:// socket on this machine",
        )
    config = RunnerConfig(
        image=plan.image.ref,
        name=plan.name,
        port=plan.port,
        workspace=plan.workspace,
        runs_dir=runs,
        token_file=token_file,
        engine_socket=socket_path,
        engine_kind=engine.kind,
        image_version=runner.image_version(image),
        concurrency=plan.concurrency,
        queue=plan.queue,
        projects_dir=plan.projects_dir,
        tools_dir=plan.tools_dir,
        env=dict(plan.settings.env),
        run_limits=dict(plan.run_limits),
        gvisor_socket=plan.gvisor_host.removeprefix("unix://") if plan.gvisor_host else None,
        service_settings=dict(plan.service_settings),
        selinux=selinux_enforcing(),
        access_dir=access,
    )
    config.config_hash = config_hash(config.environment())
    return config
