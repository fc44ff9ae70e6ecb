"""Creating the runner container and waiting until its service answers; when it does not,
its last log lines and the likely cause, for the error."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NoReturn

from roscoe.errors import ImageError, OperationFailed
from roscoe.runner import container as runner
from roscoe.runner import health
from roscoe.runner import store as state
from roscoe.runner.layout import (
    RunnerConfig,
)
from roscoe.runner.plan import StartPlan

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunnerEngine
    from roscoe.images.ensure import ImageStatus
    from roscoe.images.pull import OnPull


LOG_LINES_ON_FAILURE = 20


class StartFailed(OperationFailed):
    """The runner did not become ready; carries its last log lines for the CLI to show."""

    def __init__(self, message: str, hint: str | None, log_lines: list[str]):
        super().__init__(message, hint)
        self.log_lines = log_lines


def ensure_runner_image(
    engine: RunnerEngine, plan: StartPlan, on_pull: OnPull | None
) -> ImageStatus:
    """The image's status with its inspect data, pulled first as the --pull policy says
    (progress to on_pull); its warnings (version, unpinned reference) go to the result."""
    from roscoe.images.ensure import ensure_image, image_status

    status = ensure_image(engine, plan.image, plan.settings.pull, on_pull)
    if status.inspect is None:
        found = engine.image_inspect(plan.image.ref)
        if found is None:
            raise ImageError(f"image {plan.image.ref} is still not present on {engine.kind}")
        status = image_status(engine, plan.image, found)
    return status


def create_runner(engine: RunnerEngine, config: RunnerConfig) -> str:
    container_id = engine.create_container(config.container_spec())
    state.write_container_id(container_id)
    try:
        engine.start_container(container_id)
    except OperationFailed as exc:
        fail_start(engine, container_id, exc.message, exit_code=None)
    return container_id


def wait_ready(engine: RunnerEngine, container_id: str, port: int, wait_timeout: float) -> None:
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
                fail_start(
                    engine, container_id, why, code if status in ("exited", "dead") else None
                )
            next_inspect = now + 0.25
        if now >= deadline:
            fail_start(
                engine,
                container_id,
                f"the execution service did not answer on {health.endpoint(port)} within "
                f"{wait_timeout:g} s",
                None,
                timed_out=True,
            )
        time.sleep(0.05)


def fail_start(
    engine: RunnerEngine,
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
