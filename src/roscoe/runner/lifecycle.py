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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.config.settings import ENV_SHUTDOWN_GRACE, SHUTDOWN_GRACE_S
from roscoe.errors import OperationFailed
from roscoe.runner import container as runner
from roscoe.runner import health
from roscoe.runner import store as state
from roscoe.runner.launch import (
    StartFailed,
    create_runner,
    ensure_runner_image,
    likely_cause,
    wait_ready,
)
from roscoe.runner.layout import CANCEL_MARGIN_S, ENV_PORT
from roscoe.runner.plan import (
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    StartPlan,
    build_config,
    check_stop_timeout,
    check_wait_timeout,
    plan_start,
)
from roscoe.runner.store import StartSettings
from roscoe.runner.verdict import other_version, running_version, why_cut_off, why_replace
from roscoe.strenum import StrEnum

__all__ = [
    "StartFailed",
    "StartOutcome",
    "StartResult",
    "StopOutcome",
    "StopResult",
    "check_stop_timeout",
    "check_wait_timeout",
    "likely_cause",
    "restart",
    "start",
    "stop",
]

if TYPE_CHECKING:
    from roscoe.config.settings import Settings
    from roscoe.engine.protocols import RunnerEngine
    from roscoe.images.pull import OnPull
    from roscoe.runs.gc import GcItem


Progress = Callable[[str], None]


class StartOutcome(StrEnum):
    STARTED = "started"
    REPLACED = "replaced"  # ours was there, but stopped or started otherwise
    ALREADY_RUNNING = "already running"  # ours, as asked for: left alone


class StopOutcome(StrEnum):
    STOPPED = "stopped"
    NOT_RUNNING = "not running"


@dataclass
class StartResult:
    outcome: StartOutcome
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
    # runs of runner containers that are no more, stopped and removed (their records finished)
    swept: list[GcItem] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return health.endpoint(self.port)


@dataclass
class StopResult:
    outcome: StopOutcome
    container_id: str | None = None
    name: str = ""
    seconds: float = 0.0


def start(
    engine: RunnerEngine,
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
    _check_run_cpus(engine, settings)
    with state.start_lock(deadline_s=wait_timeout + 60):
        return _start_locked(
            engine,
            plan,
            replace=replace,
            wait_timeout=wait_timeout,
            progress=progress or _quiet,
            on_pull=on_pull,
        )


def stop(engine: RunnerEngine, settings: Settings, timeout: float | None = None) -> StopResult:
    """Stop our runner gracefully (SIGTERM, SIGKILL after `timeout`) and remove it.

    Without a timeout: the runner's own shutdown grace plus the cancel margin; 0 kills at once.
    """
    check_stop_timeout(timeout)
    longest = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
    with state.start_lock(deadline_s=longest + 120):
        return _stop_locked(engine, settings.get("container_name"), timeout)


def restart(
    engine: RunnerEngine,
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
    _check_run_cpus(engine, settings)
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


def _check_run_cpus(engine: RunnerEngine, settings: Settings) -> None:
    """The service's CPU limit (run.cpus) must fit the engine, or every run would be refused."""
    from roscoe.runs.plan import check_cpus

    cpus = settings.get("run.cpus")
    if cpus is not None:
        check_cpus(cpus, engine.cpu_count(), engine.kind)


def _stop_locked(engine: RunnerEngine, name: str, timeout: float | None) -> StopResult:
    began = time.monotonic()
    found = runner.find(engine, name, forget_stale=True)
    if found.ours is None:
        state.clear_container_id()
        return StopResult(StopOutcome.NOT_RUNNING, name=name)
    container_id = str(found.ours["Id"])
    grace = stop_timeout_of(found.ours) if timeout is None else timeout
    runner.remove(engine, container_id, stop_timeout=grace)
    state.clear_container_id()
    return StopResult(StopOutcome.STOPPED, container_id, name, time.monotonic() - began)


def stop_timeout_of(inspected: dict[str, Any]) -> float:
    """The runner's own grace (ROSCOE_SHUTDOWN_GRACE in its environment) plus the margin."""
    try:
        grace = float(runner.env_value(inspected, ENV_SHUTDOWN_GRACE) or SHUTDOWN_GRACE_S)
    except ValueError:
        grace = SHUTDOWN_GRACE_S
    return grace + CANCEL_MARGIN_S


def _start_locked(
    engine: RunnerEngine,
    plan: StartPlan,
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
    image_status = ensure_runner_image(engine, plan, on_pull)
    image = image_status.inspect or {}
    config = build_config(engine, plan, image)
    replaced_because = None
    if found.ours is not None:
        # Another image than this CLI pins: which roscoe it is on, asked once.
        other = (
            running_version(engine, found.ours)
            if found.ours.get("Image") != image.get("Id")
            else None
        )
        held = None if replace else other_version(found.ours, other, plan, config)
        if held is not None:
            # An upgrade is the operator's call: a routine start must not cut runs short.
            state.write_container_id(str(found.ours["Id"]))
            state.save_settings(plan.settings)  # what `restart` moves it to
            result = _result(StartOutcome.ALREADY_RUNNING, found.ours["Id"], plan, None, began)
            result.warnings = [*image_status.warnings, held]
            result.port = _port_of(found.ours, plan.port)
            result.swept = _sweep_left_behind(engine, result)
            return result
        replaced_because = why_replace(found.ours, other, plan, config) or why_cut_off(plan.port)
        if replaced_because is None:
            state.write_container_id(str(found.ours["Id"]))
            state.save_settings(plan.settings)  # they describe this very container
            outcome = StartOutcome.ALREADY_RUNNING
            result = _result(outcome, found.ours["Id"], plan, None, began)
            result.warnings = list(image_status.warnings)
            result.swept = _sweep_left_behind(engine, result)
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

    container_id = create_runner(engine, config)
    progress("waiting for the execution service to answer /health")
    wait_ready(engine, container_id, plan.port, wait_timeout)
    state.save_settings(plan.settings)
    outcome = StartOutcome.REPLACED if replaced_because else StartOutcome.STARTED
    result = _result(outcome, container_id, plan, replaced_because, began)
    result.warnings = list(image_status.warnings)
    result.swept = _sweep_left_behind(engine, result)
    return result


def _sweep_left_behind(engine: RunnerEngine, result: StartResult) -> list[GcItem]:
    """Stop and remove the runs of runner containers that are no more (a killed runner's, for
    one), and finish their records; what could not be removed becomes a warning."""
    from roscoe.runs.gc import collect

    swept = collect(engine, dry_run=False, runner_runs_only=True)
    for item, error in swept.failed:
        result.warnings.append(
            (f"could not remove {item.name or item.container_id}: {error}", "`roscoe gc` retries")
        )
    return swept.removed


def _holds_port(ours: dict[str, Any] | None, port: int) -> bool:
    """Our running runner listens on this port already (it is freed when it is replaced)."""
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
    outcome: StartOutcome, container_id: str, plan: StartPlan, because: str | None, began: float
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


def _port_of(ours: dict[str, Any], default: int) -> int:
    value = runner.env_value(ours, ENV_PORT) or ""
    return int(value) if value.isdigit() else default
