"""The thin HTTP layer: the standard library's threading server in front of ExecutionService.

It parses requests, hands them to `ExecutionService.handle()` and writes the Response back;
it decides nothing. It binds to loopback only: the runner uses host networking, and the
service must never be reachable from another machine.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from roscoe import __version__
from roscoe.service.api import ExecutionService

LOOPBACK = "127.0.0.1"
_DRAIN_LIMIT = 1 << 20  # unread body bytes swallowed before closing, so clients see our answer


def check_loopback(host: str) -> str:
    """`host` if it is a loopback address; ValueError otherwise (never all interfaces)."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the service listens on loopback only, not on '{host}'")


class ServiceServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the process alive at exit
    allow_reuse_address = True

    def __init__(self, service: ExecutionService, port: int, host: str = LOOPBACK):
        self.service = service
        self._busy = 0
        self._busy_cond = threading.Condition()
        super().__init__((check_loopback(host), port), _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._busy_cond:
            self._busy += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._busy_cond:
                self._busy -= 1
                self._busy_cond.notify_all()

    def wait_requests(self, timeout: float) -> bool:
        """Wait until every request being handled has been answered; True when none is left."""
        deadline = time.monotonic() + timeout
        with self._busy_cond:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._busy_cond.wait(remaining)
            return True


class _Handler(BaseHTTPRequestHandler):
    server: ServiceServer
    # HTTP/1.1 so that clients sending `Expect: 100-continue` (curl does, for bodies over
    # 1 KiB) get their 100 at once instead of waiting a second; still one request per
    # connection (Connection: close), so there is nothing to keep track of.
    protocol_version = "HTTP/1.1"
    server_version = f"roscoe/{__version__}"
    sys_version = ""
    timeout = 30  # seconds a client may take to send its request

    def _serve(self) -> None:
        self.close_connection = True
        consumed = 0

        def read_body(length: int) -> bytes:
            nonlocal consumed
            body = self.rfile.read(length)
            consumed += len(body)
            return body

        response = self.server.service.handle(
            self.command, self.path, dict(self.headers.items()), read_body
        )
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:  # the client went away; the run (if any) is recorded all the same
            return
        self._drain(consumed)

    def _drain(self, consumed: int) -> None:
        # Closing a socket with unread input makes the kernel send RST, and the client may then
        # lose the answer (a 401 or 413 sent before the body was read).
        try:
            announced = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        left = min(max(announced - consumed, 0), _DRAIN_LIMIT)
        if not left:
            return
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            while left > 0:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are logged as JSON by ExecutionService; the base class's lines would
        # bypass redaction.
        return
