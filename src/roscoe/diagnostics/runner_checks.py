"""`roscoe doctor` checks about the runner: its state, its image's version, its port.

The three read one server_status(), computed once per doctor run (runner_checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roscoe import __version__
from roscoe.diagnostics.checks import Check
from roscoe.runner import health

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunnerEngine
    from roscoe.runner.status import Status


def _status(engine: RunnerEngine) -> Status:
    from roscoe.config.settings import Settings
    from roscoe.runner.status import server_status

    return server_status(engine, Settings())


def runner_state_check(status: Status) -> Check:
    if status.state == "running":
        return Check(
            "runner",
            "ok",
            f"{status.name} running, answering on {status.endpoint} "
            f"({status.health.latency_ms} ms)",
        )
    if status.state == "absent":
        detail = f"{status.name} is not running"
        if status.foreign:
            detail += " (a container that is not roscoe's holds the name)"
        return Check("runner", "warn", detail, "`roscoe server start` starts it")
    if status.state == "starting":
        return Check(
            "runner",
            "warn",
            f"{status.name} is up but {status.endpoint}/health does not answer "
            f"({status.health.error or status.health.status})",
            "`roscoe logs` shows what the service says",
        )
    return Check(
        "runner",
        "warn",
        f"{status.name} exited (code {status.exit_code})",
        "`roscoe logs` shows why; `roscoe server start` replaces it",
    )


def runner_version_check(status: Status) -> Check:
    if status.image is None:
        return Check("runner version", "ok", "no runner to compare")
    if status.version_matches:
        return Check("runner version", "ok", f"image {status.image} is version {__version__}")
    return Check(
        "runner version",
        "warn",
        f"the runner's image {status.image} is version {status.image_version}, "
        f"this CLI is {__version__}",
        "`roscoe server restart` with the pinned image (or --use-local-image after "
        "`make build-image`) brings them in line",
    )


def runner_port_check(status: Status) -> Check:
    if status.state in ("running", "starting"):
        return Check("runner port", "ok", f"{status.port} is the runner's")
    if health.port_in_use(status.port):
        return Check(
            "runner port",
            "warn",
            f"port {status.port} on 127.0.0.1 is held by another program",
            "`roscoe server start --port N` (or ROSCOE_PORT) picks another",
        )
    return Check("runner port", "ok", f"port {status.port} on 127.0.0.1 is free")


def runner_checks(engine: RunnerEngine) -> list[Check]:
    """State, version and port of the runner, from one look at it."""
    status = _status(engine)
    return [
        check(status) for check in (runner_state_check, runner_version_check, runner_port_check)
    ]
