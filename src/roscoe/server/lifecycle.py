"""Start, stop and restart the runner container. Returns results; never prints or exits.

Start is idempotent: ours already running with the same image and settings is left alone;
ours stopped, exited, on another image or started with other settings (port, workspace, -e,
run limits, concurrency, queue, folders: a hash of its environment in a label) is replaced; a
stranger holding the name is refused unless --replace. The image is made present and the
port checked before anything is removed. The whole decision runs under a lock, so two starts
at once end with one container and both succeed. Ready means the service answers /health on
127.0.0.1:PORT; a container that exits (or keeps restarting) while we wait is removed after
its last log lines are kept for the error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from roscoe import paths
from roscoe.errors import ImageError, OperationFailed, UsageError
from roscoe.images import PULL_POLICIES
from roscoe.runner_layout import (
    CANCEL_MARGIN_S,
    DEFAULT_SHUTDOWN_GRACE_S,
    ENV_SHUTDOWN_GRACE,
    LABEL_CONFIG_HASH,
    RunnerConfig,
)
from roscoe.server import health, runner, state
from roscoe.server.state import StartSettings

if TYPE_CHECKING:
    from roscoe.engine import Engine
    from roscoe.images import ImageChoice, ImageStatus
    from roscoe.pull import PullSnapshot
    from roscoe.settings import Settings

Progress = Callable[[str], None]
OnPull = Callable[["PullSnapshot"], None]  # pull progress, while the image is being pulled
LOG_LINES_ON_FAILURE = 20
# SIGTERM to SIGKILL: the service's grace for its runs, plus the time it takes to cancel
# and remove what still runs after it (runner_layout).
DEFAULT_STOP_TIMEOUT = DEFAULT_SHUTDOWN_GRACE_S + CANCEL_MARGIN_S
DEFAULT_WAIT_TIMEOUT = 60.0


class StartFailed(OperationFailed):
    """The runner did not become ready; carries its last log lines for the CLI to show."""

    def __init__(self, message: str, hint: str | None, log_lines: list[str]):
        super().__init__(message, hint)
        self.log_lines = log_lines


@dataclass
class StartResult:
    outcome: str  # "started", "replaced", "already running"
    container_id: str
    name: str
    image: str
    port: int
    workspace: Path
    token_file: Path
    replaced_because: str | None = None
    seconds: float = 0.0
    # (message, hint) about the image: version differs from the CLI's, reference not pinned
    warnings: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return health.endpoint(self.port)


@dataclass
class StopResult:
    outcome: str  # "stopped" or "not running"
    container_id: str | None = None
    name: str = ""
    seconds: float = 0.0


@dataclass
class _Plan:
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
    run_limits: dict[str, str]  # ROSCOE_TIMEOUT/MEMORY/CPUS/NETWORK for the service's runs


def plan_start(settings: Settings, wanted: StartSettings) -> _Plan:
    """Resolve name, port, workspace and image through Settings (flag > env > config)."""
    from roscoe.images import choose_image
    from roscoe.workspace import Workspace

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
    return _Plan(
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
    )


RUN_LIMIT_KEYS = ("run.timeout", "run.memory", "run.cpus", "run.network")
UNPRIVILEGED_PORTS = 1024


def run_limits(settings: Settings) -> dict[str, str]:
    """The run defaults resolved here (env > config > default), as the service's environment.

    The service reads them with its own Settings; neither the host's environment nor its
    config file reaches the container, so they are handed over explicitly.
    """
    from roscoe.settings import SETTINGS

    found: dict[str, str] = {}
    for key in RUN_LIMIT_KEYS:
        value = settings.get(key)
        name = SETTINGS[key].env
        if value is None or name is None:
            continue  # no CPU limit: the service's default is none as well
        found[name] = f"{value:g}" if isinstance(value, float) else str(value)
    return found


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


def start(
    engine: Engine,
    settings: Settings,
    wanted: StartSettings,
    *,
    replace: bool = False,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    progress: Progress | None = None,
    on_pull: OnPull | None = None,
) -> StartResult:
    """Make sure our runner is running and answering; see the module docstring."""
    check_wait_timeout(wait_timeout)
    plan = plan_start(settings, wanted)
    with state.start_lock(deadline_s=wait_timeout + 60):
        return _start_locked(
            engine,
            plan,
            replace=replace,
            wait_timeout=wait_timeout,
            progress=progress or _quiet,
            on_pull=on_pull,
        )


def stop(engine: Engine, settings: Settings, timeout: float | None = None) -> StopResult:
    """Stop our runner gracefully (SIGTERM, SIGKILL after `timeout`) and remove it.

    Without a timeout: the runner's own shutdown grace plus the cancel margin; 0 kills at once.
    """
    check_stop_timeout(timeout)
    longest = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
    with state.start_lock(deadline_s=longest + 120):
        return _stop_locked(engine, settings.get("container_name"), timeout)


def restart(
    engine: Engine,
    settings: Settings,
    *,
    stop_timeout: float | None = None,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    progress: Progress | None = None,
    on_pull: OnPull | None = None,
) -> StartResult:
    """Stop, then start with the settings of the last start (a new container)."""
    check_wait_timeout(wait_timeout)
    check_stop_timeout(stop_timeout)
    wanted = state.load_settings() or StartSettings()
    plan = plan_start(settings, wanted)
    longest = DEFAULT_STOP_TIMEOUT if stop_timeout is None else stop_timeout
    deadline = longest + wait_timeout + 120
    with state.start_lock(deadline_s=deadline):
        _stop_locked(engine, plan.name, stop_timeout)
        return _start_locked(
            engine,
            plan,
            replace=False,
            wait_timeout=wait_timeout,
            progress=progress or _quiet,
            on_pull=on_pull,
        )


def _quiet(_: str) -> None:
    pass


def _stop_locked(engine: Engine, name: str, timeout: float | None) -> StopResult:
    began = time.monotonic()
    found = runner.find(engine, name, forget_stale=True)
    if found.ours is None:
        state.clear_container_id()
        return StopResult("not running", name=name)
    container_id = str(found.ours["Id"])
    grace = stop_timeout_of(found.ours) if timeout is None else timeout
    runner.remove(engine, container_id, stop_timeout=grace)
    state.clear_container_id()
    return StopResult("stopped", container_id, name, time.monotonic() - began)


def stop_timeout_of(inspected: dict[str, Any]) -> float:
    """The runner's own grace (ROSCOE_SHUTDOWN_GRACE in its environment) plus the margin."""
    try:
        grace = float(runner.env_value(inspected, ENV_SHUTDOWN_GRACE) or DEFAULT_SHUTDOWN_GRACE_S)
    except ValueError:
        grace = DEFAULT_SHUTDOWN_GRACE_S
    return grace + CANCEL_MARGIN_S


def _start_locked(
    engine: Engine,
    plan: _Plan,
    *,
    replace: bool,
    wait_timeout: float,
    progress: Progress,
    on_pull: OnPull | None = None,
) -> StartResult:
    began = time.monotonic()
    found = runner.find(engine, plan.name, forget_stale=True)
    if found.foreign is not None and not replace:
        raise OperationFailed(
            f"a container named {plan.name} exists and is not roscoe's (no roscoe labels)",
            hint=f"pass --replace to remove it, remove it yourself ({engine.kind} rm -f "
            f"{plan.name}), or pick another name with ROSCOE_CONTAINER_NAME",
        )
    # Everything that can fail without touching a container comes first: the image (pulled
    # as the policy says), the port, the config. A failed start leaves the old runner be.
    image_status = _ensure_image(engine, plan, on_pull)
    image = image_status.inspect or {}
    config = _config(engine, plan, image)
    replaced_because = None
    if found.ours is not None:
        replaced_because = _why_replace(found.ours, image, plan, config)
        if replaced_because is None:
            state.write_container_id(str(found.ours["Id"]))
            state.save_settings(plan.settings)  # they describe this very container
            result = _result("already running", found.ours["Id"], plan, None, began)
            result.warnings = list(image_status.warnings)
            return result
    if not _holds_port(found.ours, plan.port):
        _check_port(plan.port)

    if found.foreign is not None:
        progress(f"removing the container {plan.name} that was in the way (--replace)")
        runner.remove(engine, str(found.foreign["Id"]), stop_timeout=None)  # rm -f, as asked
    if found.ours is not None:
        progress(f"replacing the runner ({replaced_because})")
        runner.remove(engine, str(found.ours["Id"]), stop_timeout=stop_timeout_of(found.ours))
        state.clear_container_id()
        _check_port(plan.port)  # it held the port; nothing else may have taken it meanwhile

    container_id = _create(engine, config)
    progress("waiting for the execution service to answer /health")
    _wait_ready(engine, container_id, plan.port, wait_timeout)
    state.save_settings(plan.settings)
    outcome = "replaced" if replaced_because else "started"
    result = _result(outcome, container_id, plan, replaced_because, began)
    result.warnings = list(image_status.warnings)
    return result


def _holds_port(ours: dict[str, Any] | None, port: int) -> bool:
    """Our running runner listens on this port already (it is freed when it is replaced)."""
    from roscoe.runner_layout import ENV_PORT

    return (
        ours is not None
        and runner.status_of(ours) in ("running", "restarting")
        and runner.env_value(ours, ENV_PORT) == str(port)
    )


def _check_port(port: int) -> None:
    if health.port_in_use(port):
        raise OperationFailed(
            f"port {port} on 127.0.0.1 is already in use by another program",
            hint=f"stop that program, or choose another port: --port N (or ROSCOE_PORT); "
            f"`ss -ltnp 'sport = :{port}'` shows who holds it",
        )


def _result(
    outcome: str, container_id: str, plan: _Plan, because: str | None, began: float
) -> StartResult:
    return StartResult(
        outcome=outcome,
        container_id=str(container_id),
        name=plan.name,
        image=plan.image.ref,
        port=plan.port,
        workspace=plan.workspace,
        token_file=paths.token_file(),
        replaced_because=because,
        seconds=time.monotonic() - began,
    )


def _why_replace(
    ours: dict[str, Any], image: dict[str, Any], plan: _Plan, config: RunnerConfig
) -> str | None:
    """Why our existing runner cannot stay, or None when it is what was asked for."""
    from roscoe.runner_layout import ENV_HOST_WORKSPACE, ENV_PORT

    status = runner.status_of(ours)
    if status != "running":
        return f"it was {status}"
    if ours.get("Image") != image.get("Id"):
        return f"it runs another image than {plan.image.ref}"
    if runner.env_value(ours, ENV_PORT) != str(plan.port):
        return f"it listens on port {runner.env_value(ours, ENV_PORT)}, not {plan.port}"
    if runner.env_value(ours, ENV_HOST_WORKSPACE) != str(plan.workspace):
        return f"it serves another workspace than {plan.workspace}"
    labels = (ours.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_CONFIG_HASH) != config_hash(config.environment()):
        return "it was started with other settings (-e, run limits, concurrency, queue or folders)"
    return None


def config_hash(environment: Mapping[str, str]) -> str:
    """A digest of the runner's whole environment, for its label: values never in clear.

    Keyed with the service token, so a short -e value cannot be guessed from the label by
    trying candidates.
    """
    from roscoe.token import read_token

    try:
        key = read_token(paths.token_file()).encode("utf-8")
    except Exception:  # no token yet: it is created before the container
        key = b""
    text = json.dumps(dict(sorted(environment.items())), separators=(",", ":"))
    return "hmac-sha256:" + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _ensure_image(engine: Engine, plan: _Plan, on_pull: OnPull | None) -> ImageStatus:
    """The image's status with its inspect data, pulled first as the --pull policy says
    (progress to on_pull); its warnings (version, unpinned reference) go to the result."""
    from roscoe.images import ensure_image, image_status

    status = ensure_image(engine, plan.image, plan.settings.pull, on_pull)
    if status.inspect is None:
        found = engine.image_inspect(plan.image.ref)
        if found is None:
            raise ImageError(f"image {plan.image.ref} is still not present on {engine.kind}")
        status = image_status(engine, plan.image, found)
    return status


def _config(engine: Engine, plan: _Plan, image: dict[str, Any]) -> RunnerConfig:
    """The runner container as it would be created; prepares the token and the runs dir."""
    from roscoe.host import container_user, selinux_enforcing
    from roscoe.token import ensure_token

    root = os.getuid() == 0
    owner = container_user() if root else None
    token_file = paths.token_file()
    ensure_token(token_file, owner=owner)
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
        selinux=selinux_enforcing(),
    )
    config.config_hash = config_hash(config.environment())
    return config


def _create(engine: Engine, config: RunnerConfig) -> str:
    container, host = config.create_arguments()
    container_id = engine.create_container(container, host)
    state.write_container_id(container_id)
    try:
        engine.start_container(container_id)
    except OperationFailed as exc:
        _fail(engine, container_id, exc.message, exit_code=None)
    return container_id


def _wait_ready(engine: Engine, container_id: str, port: int, wait_timeout: float) -> None:
    deadline = time.monotonic() + wait_timeout
    next_inspect = 0.0
    while True:
        if health.probe(port, timeout=0.5).answering:
            return
        now = time.monotonic()
        if now >= next_inspect:
            inspected = engine.inspect_container(container_id)
            if inspected is None:
                state.clear_container_id()
                raise StartFailed("the runner container disappeared while starting", None, [])
            status = runner.status_of(inspected)
            restarts = int(inspected.get("RestartCount") or 0)
            if status not in ("running", "created") or restarts > 0:
                code = runner.exit_code(inspected)
                if status in ("exited", "dead"):
                    why = f"the runner exited while starting (code {code})"
                else:  # the restart policy brought it back: it crashed at least once
                    why = "the runner crashed while starting (the engine restarted it)"
                _fail(engine, container_id, why, code if status in ("exited", "dead") else None)
            next_inspect = now + 0.25
        if now >= deadline:
            _fail(
                engine,
                container_id,
                f"the execution service did not answer on {health.endpoint(port)} within "
                f"{wait_timeout:g} s",
                None,
                timed_out=True,
            )
        time.sleep(0.05)


def _fail(
    engine: Engine,
    container_id: str,
    message: str,
    exit_code: int | None,
    timed_out: bool = False,
) -> NoReturn:
    """Keep the last log lines, remove the container, raise StartFailed with a likely cause."""
    raw = engine.log_tail(container_id, LOG_LINES_ON_FAILURE)
    lines = raw.decode("utf-8", "replace").splitlines()[-LOG_LINES_ON_FAILURE:]
    runner.remove(engine, container_id, stop_timeout=None)
    state.clear_container_id()
    raise StartFailed(
        # The runner's own words only: roscoe's message names "the engine" by itself.
        message,
        likely_cause("\n".join(lines), exit_code, timed_out),
        lines,
    )


def likely_cause(text: str, exit_code: int | None, timed_out: bool = False) -> str:
    """A hint from the runner's last words."""
    lowered = text.lower()
    if "address already in use" in lowered:
        return "the port is taken: choose another with --port N (or ROSCOE_PORT)"
    if "permission denied" in lowered and ("sock" in lowered or "engine" in lowered):
        return (
            "the service cannot use the engine socket: it runs as uid 1000 with the socket's "
            "group; make the socket group-readable (0660) or run roscoe as the socket's owner"
        )
    if (
        exit_code in (126, 127)
        or "executable file not found" in lowered
        or "no such file or directory" in lowered
        or "no module named" in lowered
    ):
        return (
            "the image has no roscoe execution service: use a roscoe runner image "
            "(`make build-image`, then --use-local-image)"
        )
    if timed_out:
        return "the service is still starting or hung: see `roscoe logs`, or raise --wait-timeout"
    return "see the runner's last log lines above; `roscoe doctor` checks the set-up"
