"""The backend of `roscoe mcp` (stdio): the execution service's own run machinery (service/:
its scheduler, waiting line, cancel and records), held in this process on the local engine.

Runs are made exactly as `roscoe run` makes them (same workspace and settings, same image
choice, same hardening), so no runner is needed; the tools reach them through the same
adapter as the runner's `/mcp` endpoint (`mcp.service_backend`), so both transports behave
alike. At most `concurrency` runs go at once and `queue` more wait; beyond that a run is
refused (the agent is told to wait or cancel one). A run belongs to this process: if it is
killed, the run core's labels (this pid and host) let `roscoe gc` sweep what is left, as
after a killed `roscoe run`. The service's log lines go to stderr (warnings and errors only):
stdout carries the protocol.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from roscoe import __version__
from roscoe.access.principal import Principal
from roscoe.config.settings import RunLimits, default
from roscoe.mcp.service_backend import ServiceBackend
from roscoe.service.api import ExecutionService
from roscoe.service.backend import CoreBackend, RunDefaults
from roscoe.service.log import JsonLog
from roscoe.service.scheduler import Scheduler
from roscoe.service.validate import MAX_TIMEOUT_S

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine
    from roscoe.images.choice import ImageChoice
    from roscoe.runs.isolation import Connect
    from roscoe.runs.workspace import Workspace

# After a shutdown stopped the runs in flight: how long they may take to be removed.
CLOSE_WAIT_S = 30.0


@dataclass(frozen=True)
class LocalLimits:
    """What a run does not choose: the limits `roscoe run` would apply, and the slots."""

    run: RunLimits = field(default_factory=RunLimits)
    env: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = default("service.concurrency")
    queue: int = default("service.queue")


def local_user() -> Principal:
    """Whoever started `roscoe mcp`, with every right (the runs are theirs anyway); records
    say `mcp:<user>` asked for them."""
    from roscoe.runs.host import user_name

    return Principal(f"mcp:{user_name()}", admin=True, can_apply=True)


class LocalBackend(ServiceBackend):
    """The service's machinery in this process; `close()` ends every run before it returns."""

    def __init__(
        self,
        connect: Callable[[], RunEngine],
        workspace: Workspace,
        image: ImageChoice,
        limits: LocalLimits,
        connect_url: Connect | None = None,
    ):
        core = CoreBackend(
            connect,
            workspace,
            RunDefaults(image=image.ref, limits=limits.run, env=dict(limits.env)),
            choice=image,  # pulled first when absent, as `roscoe run` does (not the dev image)
            connect_url=connect_url,
        )
        log = JsonLog(sys.stderr, level="warning")
        super().__init__(
            ExecutionService(
                # Never shown nor asked for: stdio callers are not authenticated by token.
                token=secrets.token_urlsafe(32),
                scheduler=Scheduler(core, limits.concurrency, limits.queue, log),
                health_info={"version": __version__},
                log=log,
                max_timeout=max(MAX_TIMEOUT_S, limits.run.timeout),
            )
        )

    def close(self) -> list[str]:
        """Refuse new runs, cancel the queued ones, stop the running ones and wait for their
        containers to be removed (shutdown); the ids of the runs it ended."""
        cancelled = self.service.close()
        stopped = self.service.interrupt_running()
        self.service.scheduler.wait_idle(CLOSE_WAIT_S)
        return cancelled + stopped
