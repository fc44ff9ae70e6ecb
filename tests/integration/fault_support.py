"""Shared by the fault tests (no tests here): a unix-socket proxy in front of the engine that
can be cut, and restarting Podman's API service under the engines lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Test runs on a machine shared by several people hold this lock shared; a test that
# restarts an engine takes it alone, so no other run sees the engine go away.
ENGINES_LOCK = Path(os.environ.get("ROSCOE_TEST_ENGINES_LOCK", "/tmp/roscoe-engines.lock"))
LOCK_DEADLINE_S = 90 * 60


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


def _holding_the_lock() -> bool:
    """True when this process inherited the engines lock: a test run under `flock -s`. It
    cannot take the lock alone then, and restarting an engine would disturb the others."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.path.realpath(f"/proc/self/fd/{fd}") == str(ENGINES_LOCK.resolve()):
                return True
    return False


def restarts_allowed() -> None:
    """Engine-restart tests run only where nothing else depends on the engines meanwhile:
    CI (alone on its machine), or when asked with ROSCOE_TEST_ENGINE_RESTARTS=1; and never
    from a run that holds the engines lock shared (it would wait on itself)."""
    if _holding_the_lock():
        pytest.skip(
            f"this test run holds {ENGINES_LOCK} shared (flock -s), and restarting Podman's "
            "service needs it alone: run the engine_restart tests by themselves"
        )
    if os.environ.get("ROSCOE_TEST_ENGINE_RESTARTS") == "1":
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "engine-restart tests are required here: set ROSCOE_TEST_ENGINE_RESTARTS=1",
            pytrace=False,
        )
    pytest.skip("restarts Podman's API service: set ROSCOE_TEST_ENGINE_RESTARTS=1 to run it")


@contextlib.contextmanager
def engines_alone() -> Iterator[None]:
    """Hold the engines lock exclusively: every other test run on this machine has finished
    or waits. Do not run these tests under `flock -s` yourself: that would wait on itself."""
    fd = os.open(ENGINES_LOCK, os.O_RDWR | os.O_CREAT, 0o644)

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(LOCK_DEADLINE_S)  # a blocking wait, in the kernel's queue, with a deadline
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except TimeoutError:
        os.close(fd)
        pytest.fail(f"{ENGINES_LOCK} stayed taken for {LOCK_DEADLINE_S} s", pytrace=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def engines_sh(*args: str) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "engines.sh"), *args],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()


def stop_podman_service() -> None:
    """Stop the Podman API service engines.sh started (its containers run on)."""
    state = Path(os.environ.get("ROSCOE_ENGINES_STATE", "/tmp/roscoe-engines"))
    if not (state / "podman.pid").is_file():
        pytest.fail("Podman's API service was not started by scripts/engines.sh", pytrace=False)
    engines_sh("stop", "podman")


def start_engines() -> None:
    engines_sh("start")
