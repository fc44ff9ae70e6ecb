"""`roscoe logs` against the real runner on Docker and Podman."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from helpers import roscoe
from roscoe.engine import Engine

pytestmark = pytest.mark.engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def runner(
    engine: Engine, engine_env: dict[str, str], runner_image: str, unique_name: str
) -> Iterator[dict[str, str]]:
    """A started runner of this test's own; removed afterwards."""
    env = {**engine_env, "ROSCOE_CONTAINER_NAME": unique_name, "ROSCOE_PORT": str(free_port())}
    try:
        done = roscoe("server", "start", "--use-local-image", env=env)
        assert done.returncode == 0, done.stderr.decode()
        yield env
    finally:
        engine.remove_container(unique_name, force=True)


def poke(env: dict[str, str], marker: str) -> None:
    """One GET /runs without a token: the service logs the 401 at info, marker included
    (a successful /health is logged at debug only)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(env["ROSCOE_PORT"]), timeout=5)
    conn.request("GET", f"/runs?mark={marker}")
    conn.getresponse().read()
    conn.close()


def test_tail_gives_exactly_the_last_lines(engine, runner, unique_name) -> None:
    for i in range(8):
        poke(runner, f"tail-{i}")
    done = roscoe("logs", "--tail", "5", env=runner)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 5
    assert "tail-7" in lines[-1] and "tail-3" in lines[0]
    everything = roscoe("logs", "--tail", "all", env=runner).stdout.decode().splitlines()
    assert everything[-5:] == lines
    assert json.loads(lines[-1])["event"] == "request"


def test_follow_survives_silence_and_ends_cleanly_on_ctrl_c(runner) -> None:
    # The configured read timeout is 2 s; the stream then stays silent for 5 s.
    env = {**os.environ, **runner, "ROSCOE_LOGS_READ_TIMEOUT": "2"}
    # As for a command in a terminal's foreground: a test run started in the background
    # ignores SIGINT, a child would inherit that, and Python would then never raise
    # KeyboardInterrupt (right for a background `roscoe logs -f`). A signal caught here is
    # reset to its default in the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roscoe", "logs", "-f", "--tail", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in iter(proc.stdout.readline, b"")],
        daemon=True,
    ).start()
    try:
        # Not a wait for a signal: this silence, longer than the read timeout, is what the
        # test is about (with --tail 0 the follower shows nothing until the marker).
        time.sleep(5)
        assert proc.poll() is None, proc.stderr.read().decode()
        marker = uuid.uuid4().hex
        poke(runner, marker)
        seen = b""
        deadline = time.monotonic() + 30
        while marker.encode() not in seen and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen += lines.get(timeout=1)
        assert marker.encode() in seen
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_since_filters_out_older_lines(runner) -> None:
    poke(runner, "old-line")
    done = roscoe("logs", "--since", "2024-01-01T00:00:00Z", env=runner)
    assert b"old-line" in done.stdout
    # Not a wait for a signal: the clock itself must move on, as --since counts whole seconds.
    time.sleep(2.5)
    poke(runner, "new-line")
    recent = roscoe("logs", "--since", "1s", env=runner)
    assert recent.returncode == 0, recent.stderr.decode()
    assert b"new-line" in recent.stdout
    assert b"old-line" not in recent.stdout
    bad = roscoe("logs", "--since", "last tuesday", env=runner)
    assert bad.returncode == 2


def test_no_runner_is_exit_1(engine_env, unique_name) -> None:
    done = roscoe("logs", env={**engine_env, "ROSCOE_CONTAINER_NAME": unique_name})
    assert done.returncode == 1
    assert b"roscoe server start" in done.stderr
