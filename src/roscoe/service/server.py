"""Serving the app: the listening socket, uvicorn, and a stop that drains the runs first.

The socket is bound here, loopback only, with a listen backlog large enough that a burst of
clients waits in the kernel for an answer (200 or 429) instead of being reset. Shutdown
(SIGTERM or SIGINT): stop accepting connections, cancel the queued runs (recorded
`cancelled`), let runs in flight finish for ROSCOE_SHUTDOWN_GRACE seconds, then stop the
rest (recorded `interrupted`; their containers are killed and removed by the run core),
answer every open request, and return, so the process exits 0.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from roscoe import __version__
from roscoe.runner.layout import CANCEL_MARGIN_S
from roscoe.service.api import ExecutionService
from roscoe.service.log import JsonLog
from roscoe.service.protocol import ServiceProtocol
from roscoe.service.validate import MAX_HEADER_BYTES

LOOPBACK = "127.0.0.1"
# Pending connections the kernel holds for us (Python's default is 5; the kernel caps this
# at net.core.somaxconn).
LISTEN_BACKLOG = 2048
# After cancelling: how long stopping and removing the cancelled runs' containers may take
# (within the margin `server stop` leaves; see runner.layout.CANCEL_MARGIN_S).
CANCEL_WAIT_S = CANCEL_MARGIN_S - 5
ANSWER_WAIT_S = 5.0
KEEP_ALIVE_S = 5


def check_loopback(host: str) -> str:
    """`host` if it is a loopback address; ValueError otherwise (never all interfaces)."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the service listens on loopback only, not on '{host}'")


def listen(port: int, host: str = LOOPBACK) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((check_loopback(host), port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class Server:
    """uvicorn's server with roscoe's own stop: the runs are drained before it closes."""

    def __init__(
        self,
        app: FastAPI,
        sock: socket.socket,
        service: ExecutionService,
        grace: float,
        log: JsonLog,
    ):
        self.sock = sock
        self.service = service
        self.grace = grace
        self.log = log
        config = uvicorn.Config(
            app,
            http=ServiceProtocol,
            ws="none",
            lifespan="on",
            backlog=LISTEN_BACKLOG,
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            date_header=True,
            headers=[("server", f"roscoe/{__version__}")],
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=int(grace + CANCEL_WAIT_S + ANSWER_WAIT_S),
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        self.uvicorn = _Uvicorn(config, self._on_signal)
        self._drain: threading.Thread | None = None

    def serve_until_stopped(self) -> None:
        self.uvicorn.run(sockets=[self.sock])
        if self._drain is not None:
            self._drain.join(self.grace + CANCEL_WAIT_S + ANSWER_WAIT_S)

    def _on_signal(self, signum: int) -> None:
        if self._drain is not None:
            return
        self.log("shutdown", phase="requested", signal=signal.Signals(signum).name)
        self._drain = threading.Thread(target=self._drain_runs, name="roscoe-drain", daemon=True)
        self._drain.start()
        self.uvicorn.should_exit = True  # stop accepting; open requests are still answered

    def _drain_runs(self) -> None:
        drain(self.service, self.grace, self.log)


def drain(service: ExecutionService, grace: float, log: JsonLog) -> None:
    """Cancel the queued runs, give the running ones `grace` seconds, then stop them."""
    cancelled = service.close()
    scheduler = service.scheduler
    log(
        "shutdown",
        phase="draining",
        runs_in_flight=scheduler.running,
        runs_cancelled=cancelled,
        grace_s=grace,
    )
    if scheduler.wait_idle(grace):
        return
    deadline = time.monotonic() + CANCEL_WAIT_S
    told: set[str] = set()
    while True:
        # Again and again: a run that had its slot but no container yet is caught next time.
        stopped = set(service.interrupt_running()) - told
        if stopped:
            log("shutdown", phase="cancelling", runs=sorted(stopped))
            told |= stopped
        if scheduler.wait_idle(0.5) or time.monotonic() >= deadline:
            break
    if scheduler.running:
        log("shutdown", level="error", phase="abandoned", runs_in_flight=scheduler.running)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server with roscoe's signal handling."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[int], None]):
        super().__init__(config)
        self._on_signal = on_signal

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # roscoe's own handlers: drain the runs first, and exit 0 afterwards (uvicorn's
        # re-raise the signal once it is done, which would end the process with 143).
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._handle) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._on_signal(signum)
