"""Start the execution service from the runner container's environment, and stop it cleanly.

Shutdown (SIGTERM or SIGINT): stop accepting connections, refuse queued requests, let runs in
flight finish for ROSCOE_SHUTDOWN_GRACE seconds, then cancel the rest (their containers are
stopped and removed by the run core), answer every open request, and exit 0.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType

from roscoe import __version__
from roscoe.errors import RoscoeError
from roscoe.runner.layout import CANCEL_MARGIN_S, ServiceEnv
from roscoe.service.api import ExecutionService
from roscoe.service.backend import CoreBackend, RunDefaults
from roscoe.service.limiter import RunLimiter
from roscoe.service.log import JsonLog
from roscoe.service.retention import RetentionJob

# After cancelling: how long stopping and removing the cancelled runs' containers may take
# (within the margin `server stop` leaves; see runner.layout.CANCEL_MARGIN_S).
CANCEL_WAIT_S = CANCEL_MARGIN_S - 5
ANSWER_WAIT_S = 5.0


def main() -> int:
    log = JsonLog()
    try:
        service, port, grace = _build(log)
        retention = _retention(log)
    except RoscoeError as exc:
        log("startup_failed", level="error", error=exc.message, hint=exc.hint)
        return int(exc.exit_code)
    except ValueError as exc:  # a malformed number in the environment
        log("startup_failed", level="error", error=str(exc))
        return 2

    from roscoe.service.httpd import ServiceServer

    try:
        server = ServiceServer(service, port)
    except OSError as exc:
        log("startup_failed", level="error", error=f"cannot listen on 127.0.0.1:{port}: {exc}")
        return 1

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log("shutdown", phase="requested", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, which runs in this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(
        "service_started",
        port=port,
        pid=os.getpid(),
        concurrency=service.limiter.concurrency,
        queue=service.limiter.queue,
        shutdown_grace_s=grace,
        log_level=log.level,
        **service.health_info,
    )
    if retention is not None:
        retention.start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        if retention is not None:
            retention.stop()
    _drain(service, grace, log)
    server.wait_requests(ANSWER_WAIT_S)
    log("shutdown", phase="done")
    return 0


def _drain(service: ExecutionService, grace: float, log: JsonLog) -> None:
    limiter = service.limiter
    limiter.close()  # queued requests get 503; the listening socket is already closed
    log("shutdown", phase="draining", runs_in_flight=limiter.running, grace_s=grace)
    if limiter.wait_idle(grace):
        return
    deadline = time.monotonic() + CANCEL_WAIT_S
    told: set[str] = set()
    while True:
        # Again and again: a run that had its slot but no cancel handle yet is caught next time.
        cancelled = set(service.cancel_all()) - told
        if cancelled:
            log("shutdown", phase="cancelling", runs=sorted(cancelled))
            told |= cancelled
        if limiter.wait_idle(0.5) or time.monotonic() >= deadline:
            break
    if limiter.running:
        log("shutdown", level="error", phase="abandoned", runs_in_flight=limiter.running)


def _retention(log: JsonLog) -> RetentionJob | None:
    """The pruning job when service.prune is on and a retention is set, else None."""
    from roscoe.config.settings import Settings
    from roscoe.runs.retention import policy_from_settings

    settings = Settings()
    if not settings.get("service.prune"):
        return None
    policy = policy_from_settings(settings)
    if policy.empty:
        log(
            "retention",
            level="warning",
            phase="off",
            reason="service.prune is on, but none of runs.older_than, runs.keep, "
            "runs.max_size is set",
        )
        return None
    return RetentionJob(policy, log)


def _build(log: JsonLog) -> tuple[ExecutionService, int, float]:
    from roscoe.config.settings import Settings
    from roscoe.engine import connect
    from roscoe.errors import UsageError
    from roscoe.runner.token import read_token
    from roscoe.runs.workspace import Workspace

    env = ServiceEnv.from_environ()
    token = read_token(env.token_file)
    log.add_secret(token)
    grace = env.shutdown_grace
    if not env.runner_image:
        raise UsageError("ROSCOE_RUNNER_IMAGE is not set: the service needs an image for runs")
    settings = Settings()
    log.level = settings.get("service.log_level")
    runtime = settings.get("engine")
    engine = connect(runtime)
    try:
        engine_info = {"kind": engine.info.kind, "version": engine.info.version}
    finally:
        engine.close()
    defaults = RunDefaults(
        image=env.runner_image,
        timeout=settings.get("run.timeout"),
        memory=settings.get("run.memory"),
        cpus=settings.get("run.cpus"),
        network=settings.get("run.network"),
        env={n: os.environ[n] for n in env.passthrough if n in os.environ},
    )
    workspace = Workspace(
        root=env.workspace,
        projects=env.projects_dir,
        tools=env.tools_dir,
        host_root=env.host_workspace,
    )
    limiter = RunLimiter(env.concurrency, env.queue)
    backend = CoreBackend(lambda: connect(runtime), workspace, defaults)
    service = ExecutionService(
        token=token,
        limiter=limiter,
        backend=backend,
        health_info={"version": __version__, "engine": engine_info},
        log=log,
    )
    return service, env.port, grace
