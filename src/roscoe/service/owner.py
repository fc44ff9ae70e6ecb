"""Which runner container this service runs in, and the runs an earlier one left behind.

Runs are tied to the runner container (its id and its start, as labels): when it is gone,
stopped or restarted, nobody collects them. The service finds its own container by the name
`roscoe server start` gave it (ROSCOE_CONTAINER_NAME) and, as it starts, sweeps the runs of
runners that are no more, finishing their records (runs.gc): those of a runner the engine
restarted after a crash (same id, another start), for one. No sockets of its own here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from roscoe.service.log import JsonLog

if TYPE_CHECKING:
    from roscoe.engine.protocols import ContainerEngine, GcEngine


def runner_owner(engine: GcEngine, name: str) -> dict[str, str]:
    """The owner labels of the runner container named `name`, or {} when there is no such
    runner of roscoe's (a service started by hand): runs then carry this pid and host name."""
    from roscoe.runner import container

    inspected = engine.inspect_container(name)
    if inspected is None or not container.is_ours(inspected):
        return {}
    if container.container_name(inspected) != name:
        return {}
    return container.owner_labels(inspected)


def sweep_left_behind(connect: Callable[[], ContainerEngine], log: JsonLog) -> threading.Thread:
    """Sweep, in the background, the runs of runner containers that are no more."""

    def sweep() -> None:
        from roscoe.runs.gc import collect

        try:
            engine = connect()
            try:
                result = collect(engine, dry_run=False, runner_runs_only=True)
            finally:
                engine.close()
        except Exception as exc:  # a failed sweep must not take the service down
            log("sweep", level="error", error=f"{type(exc).__name__}: {exc}")
            return
        if result.removed or result.failed:
            log(
                "sweep",
                removed=[item.to_json() for item in result.removed],
                failed=[{**item.to_json(), "error": error} for item, error in result.failed],
            )

    thread = threading.Thread(target=sweep, name="roscoe-sweep", daemon=True)
    thread.start()
    return thread
