"""Start the execution service from the runner container's environment.

`python -m roscoe.service` comes here: read the environment `roscoe server start` set, build
the service, bind the socket and serve until a signal (see `roscoe.service.server`).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from roscoe import __version__
from roscoe.errors import RoscoeError
from roscoe.runner.layout import ServiceEnv
from roscoe.service.api import ExecutionService
from roscoe.service.log import JsonLog
from roscoe.service.owner import runner_owner, sweep_left_behind
from roscoe.service.readiness import EngineProbe
from roscoe.service.retention import RetentionJob

if TYPE_CHECKING:
    from roscoe.mcp.http import McpEndpoint


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
    from roscoe.service.server import LOOPBACK, Server, listen

    try:
        sock = listen(port)
    except OSError as exc:
        log("startup_failed", level="error", error=f"cannot listen on {LOOPBACK}:{port}: {exc}")
        return 1

    from roscoe.service.app import create_app

    route_library_logs(log)
    mcp = _mcp_endpoint(service, log)
    app = create_app(service, lifespans=[mcp.lifespan] if mcp else ())
    if mcp is not None:
        mcp.install(app)
    server = Server(app, sock, service, grace, log)
    log(
        "service_started",
        port=port,
        pid=os.getpid(),
        concurrency=service.scheduler.concurrency,
        queue=service.scheduler.queue,
        shutdown_grace_s=grace,
        log_level=log.level,
        **service.health_info,
    )
    if retention is not None:
        retention.start()
    try:
        server.serve_until_stopped()
    finally:
        if retention is not None:
            retention.stop()
    log("shutdown", phase="done")
    return 0


class _JsonLogHandler(logging.Handler):
    """Warnings from uvicorn and the run core, as the service's own JSON lines."""

    def __init__(self, log: JsonLog):
        super().__init__(logging.WARNING)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not cost a request
            message = str(record.msg)
        self._log("library", level=record.levelname.lower(), logger=record.name, message=message)


def _mcp_endpoint(service: ExecutionService, log: JsonLog) -> McpEndpoint | None:
    """/mcp, when the MCP SDK is installed (roscoe[mcp]; the runner image has it)."""
    try:
        from roscoe.mcp.http import McpEndpoint
    except ImportError:
        log("mcp_unavailable", level="warning", reason="the MCP SDK (roscoe[mcp]) is not installed")
        return None
    return McpEndpoint(service)


def route_library_logs(log: JsonLog) -> None:
    handler = _JsonLogHandler(log)
    # The root logger too: a library that logs (the MCP SDK sets up a handler of its own on
    # the root when it finds none) must not write past the JSON log and its redaction.
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "roscoe", "mcp"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.WARNING)


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
    from roscoe.config.settings import RunLimits, Settings, env_name
    from roscoe.engine import connect, connect_url
    from roscoe.errors import UsageError
    from roscoe.runner.token import read_token
    from roscoe.runs.workspace import Workspace
    from roscoe.service.backend import CoreBackend, RunDefaults
    from roscoe.service.scheduler import Scheduler

    env = ServiceEnv.from_environ()
    token = read_token(env.token_file)
    log.add_secret(token)
    grace = env.shutdown_grace
    if not env.runner_image:
        raise UsageError(f"{env_name('image')} is not set: the service needs an image for runs")
    settings = Settings()
    log.level = settings.get("service.log_level")
    runtime = settings.get("engine")
    engine = connect(runtime)
    try:
        engine_info = {"kind": engine.info.kind, "version": engine.info.version}
        owner = runner_owner(engine, settings.get("container_name"))
        # Asked once for the service's life, not once a run: Podman takes up to a second.
        facts = engine.facts() if engine.kind == "podman" else None
    finally:
        engine.close()
    log("owner", labels=owner or None)
    defaults = RunDefaults(
        image=env.runner_image,
        limits=RunLimits.resolve(settings),
        env={n: os.environ[n] for n in env.passthrough if n in os.environ},
    )
    workspace = Workspace(
        root=env.workspace,
        projects=env.projects_dir,
        tools=env.tools_dir,
        host_root=env.host_workspace,
    )
    backend = CoreBackend(
        lambda: connect(runtime, facts=facts),
        workspace,
        defaults,
        engine_info["kind"],
        owner=owner,
        connect_url=connect_url,
    )
    sweep_left_behind(lambda: connect(runtime, facts=facts), log)
    service = ExecutionService(
        token=token,
        scheduler=Scheduler(backend, env.concurrency, env.queue, log),
        health_info={"version": __version__, "engine": engine_info},
        log=log,
        engine_probe=EngineProbe.from_environ(os.environ).check,
        tokens_file=env.tokens_file,
    )
    if service.book.problem:
        log("token_file_unusable", level="error", reason=service.book.problem)
    return service, env.port, grace
