"""`roscoe server status`: what the runner is doing, as one result object.

The JSON keys of `Status.to_json()` are a contract (tests/unit/test_server_core.py):
state is one of running, starting (container up, /health not answering yet), degraded (the
service answers but cannot reach its engine: `roscoe server start` replaces it), exited,
absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from roscoe import __version__
from roscoe.config import paths
from roscoe.runner import container as runner
from roscoe.runner import health
from roscoe.strenum import StrEnum

if TYPE_CHECKING:
    from roscoe.config.settings import Settings
    from roscoe.engine.protocols import RunnerEngine


class RunnerState(StrEnum):
    """What `server status` says of the runner (a contract: docs/json.md)."""

    RUNNING = "running"  # up, and its service answers /health
    STARTING = "starting"  # the container is up, /health does not answer yet
    DEGRADED = "degraded"  # its service answers but cannot reach the engine: replace it
    EXITED = "exited"
    ABSENT = "absent"


@dataclass
class Status:
    state: RunnerState
    name: str
    port: int
    workspace: str
    engine: dict[str, str]
    container_id: str | None = None
    image: str | None = None
    image_digest: str | None = None
    image_version: str = "unknown"
    exit_code: int | None = None
    started_at: str | None = None
    uptime_s: float | None = None
    health: health.Health = field(default_factory=lambda: health.Health(False))
    runs_in_flight: int | None = None
    runs_done: int = 0
    foreign: bool = False  # the name is held by a container that is not roscoe's

    @property
    def endpoint(self) -> str:
        return health.endpoint(self.port)

    @property
    def version_matches(self) -> bool:
        return self.image_version in (__version__, f"v{__version__}")

    @property
    def healthy(self) -> bool:
        return self.state == RunnerState.RUNNING

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "name": self.name,
            "container_id": self.container_id,
            "short_id": self.container_id[:12] if self.container_id else None,
            "exit_code": self.exit_code,
            "image": self.image,
            "image_digest": self.image_digest,
            "image_version": self.image_version,
            "cli_version": __version__,
            "version_match": self.version_matches if self.image else None,
            "engine": self.engine,
            "started_at": self.started_at,
            "uptime_s": self.uptime_s,
            "health": self.health.to_json(),
            "endpoint": self.endpoint,
            "token_file": str(paths.token_file()),
            "workspace": self.workspace,
            "runs_in_flight": self.runs_in_flight,
            "runs_done": self.runs_done,
            "name_taken_by_foreign_container": self.foreign,
        }


def server_status(engine: RunnerEngine, settings: Settings) -> Status:
    from roscoe.config.settings import ENV_HOST_WORKSPACE
    from roscoe.runner.layout import ENV_PORT, ENV_RUNNER_IMAGE

    name = settings.get("container_name")
    found = runner.find(engine, name)
    engine_info = {
        "kind": engine.kind,
        "version": engine.info.version,
        "endpoint": engine.endpoint.url,
    }
    status = Status(
        state=RunnerState.ABSENT,
        name=name,
        port=settings.get("port"),
        workspace=settings.workspace().value,
        engine=engine_info,
        runs_done=_runs_done(),
        foreign=found.foreign is not None,
    )
    ours = found.ours
    if ours is None:
        return status
    # What the container was really started with beats what the settings say today.
    port = runner.env_value(ours, ENV_PORT)
    if port and port.isdigit():
        status.port = int(port)
    status.workspace = runner.env_value(ours, ENV_HOST_WORKSPACE) or status.workspace
    status.container_id = str(ours.get("Id"))
    # The reference roscoe was given (Podman rewrites Config.Image to localhost/...).
    status.image = runner.env_value(ours, ENV_RUNNER_IMAGE) or str(
        (ours.get("Config") or {}).get("Image") or ""
    )
    image = engine.image_inspect(str(ours.get("Image") or "")) if ours.get("Image") else None
    status.image_version = runner.image_version(image)
    digests = (image or {}).get("RepoDigests") or []
    status.image_digest = str(digests[0]).rpartition("@")[2] if digests else ours.get("Image")
    engine_state = runner.status_of(ours)
    if engine_state in ("running", "restarting"):
        started = runner.started_at(ours)
        if started is not None:
            status.started_at = started.isoformat()
            status.uptime_s = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
        status.health = health.probe(status.port, engine=True)
        answering = status.health.answering and engine_state == "running"
        if not answering:
            status.state = RunnerState.STARTING
        elif status.health.engine_reachable is False:
            status.state = RunnerState.DEGRADED
        else:
            status.state = RunnerState.RUNNING
        in_flight = status.health.payload.get("runs_in_flight")
        status.runs_in_flight = int(in_flight) if isinstance(in_flight, int) else None
    else:
        status.state = RunnerState.EXITED
        status.exit_code = runner.exit_code(ours)
    return status


def _runs_done() -> int:
    """Run folders in the host's runs dir (the CLI's runs and the service's)."""
    try:
        return sum(1 for entry in paths.runs_dir().iterdir() if entry.is_dir())
    except OSError:
        return 0
