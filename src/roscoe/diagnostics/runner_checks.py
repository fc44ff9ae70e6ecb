"""`roscoe doctor` checks about the runner: its state, its image's version, its port.

The three read one server_status(), computed once per doctor run (runner_checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roscoe import __version__
from roscoe.diagnostics.checks import Check, CheckStatus
from roscoe.runner import health
from roscoe.runner.status import RunnerState, Status

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunnerEngine


def _status(engine: RunnerEngine) -> Status:
    from roscoe.config.settings import Settings
    from roscoe.runner.status import server_status

    return server_status(engine, Settings())


def runner_state_check(status: Status) -> Check:
    if status.state == RunnerState.RUNNING:
        return Check(
            "runner",
            CheckStatus.OK,
            f"{status.name} running, answering on {status.endpoint} "
            f"({status.health.latency_ms} ms)",
        )
    if status.state == RunnerState.ABSENT:
        detail = f"{status.name} is not running"
        if status.foreign:
            detail += " (a container that is not roscoe's holds the name)"
        return Check("runner", CheckStatus.WARN, detail, "`roscoe server start` starts it")
    if status.state == RunnerState.DEGRADED:
        return Check(
            "runner",
            CheckStatus.FAIL,
            f"{status.name} answers on {status.endpoint} but cannot reach the engine "
            f"({status.health.engine_error})",
            "`roscoe server start` replaces it",
        )
    if status.state == RunnerState.STARTING:
        return Check(
            "runner",
            CheckStatus.WARN,
            f"{status.name} is up but {status.endpoint}/health does not answer "
            f"({status.health.error or status.health.status})",
            "`roscoe logs` shows what the service says",
        )
    return Check(
        "runner",
        CheckStatus.WARN,
        f"{status.name} exited (code {status.exit_code})",
        "`roscoe logs` shows why; `roscoe server start` replaces it",
    )


def runner_version_check(status: Status) -> Check:
    if status.image is None:
        return Check("runner version", CheckStatus.OK, "no runner to compare")
    if status.version_matches:
        return Check(
            "runner version", CheckStatus.OK, f"image {status.image} is version {__version__}"
        )
    return Check(
        "runner version",
        CheckStatus.WARN,
        f"the runner's image {status.image} is version {status.image_version}, "
        f"this CLI is {__version__}",
        "`roscoe server restart` with the pinned image (or --use-local-image after "
        "`make build-image`) brings them in line",
    )


def runner_port_check(status: Status) -> Check:
    if status.state in (RunnerState.RUNNING, RunnerState.STARTING, RunnerState.DEGRADED):
        return Check("runner port", CheckStatus.OK, f"{status.port} is the runner's")
    if health.port_in_use(status.port):
        return Check(
            "runner port",
            CheckStatus.WARN,
            f"port {status.port} on 127.0.0.1 is held by another program",
            "`roscoe server start --port N` (or ROSCOE_PORT) picks another",
        )
    return Check("runner port", CheckStatus.OK, f"port {status.port} on 127.0.0.1 is free")


def runner_checks(engine: RunnerEngine) -> list[Check]:
    """State, version and port of the runner, from one look at it."""
    status = _status(engine)
    return [
        check(status) for check in (runner_state_check, runner_version_check, runner_port_check)
    ]
