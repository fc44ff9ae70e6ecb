"""Shared by the fault tests (no tests here): a unix-socket proxy in front of the engine that
can be cut, and restarting Podman's API service under the engines lock."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

import pytest

from helpers import engines_script

ROOT = Path(__file__).resolve().parents[2]


class UnixProxy:
    """Forwards every connection on `path` to the engine's socket, byte for byte, until cut."""

    def __init__(self, path: Path, target: str):
        self.path = path
        self.target = target
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        os.chmod(path, 0o666)  # the runner's uid 1000 connects through it
        self.listener.listen(64)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def cut(self) -> None:
        """Stop listening, drop every connection and remove the socket file."""
        self.listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self.path.unlink(missing_ok=True)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def stop_podman_service() -> None:
    """Stop the Podman API service engines.sh started (its containers run on)."""
    state = Path(os.environ.get("ROSCOE_ENGINES_STATE", "/tmp/roscoe-engines"))
    if not (state / "podman.pid").is_file():
        pytest.fail("Podman's API service was not started by scripts/engines.sh", pytrace=False)
    engines_script("stop", "podman")


def start_engines() -> None:
    engines_script("start")
