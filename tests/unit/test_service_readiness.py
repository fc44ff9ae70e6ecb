"""/health?engine=1: whether the service reaches its engine, from a real unix socket."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_fakes import FakeBackend, make_service

from roscoe.service.app import create_app
from roscoe.service.readiness import EngineProbe, Readiness


class _UnixHTTPServer(HTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "engine", 0


class _Ping(BaseHTTPRequestHandler):
    pings = 0

    def do_GET(self) -> None:
        type(self).pings += 1
        self.send_response(200 if self.path == "/_ping" else 404)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def address_string(self) -> str:
        return "engine"

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "engine.sock"
    server = _UnixHTTPServer(str(path), _Ping)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_an_engine_that_answers_is_reachable(engine_socket: Path) -> None:
    assert EngineProbe(str(engine_socket)).check() == Readiness(True)


def test_a_socket_nothing_listens_on_any_more_is_not(tmp_path: Path) -> None:
    # What a runner holding the old socket sees after the engine's service restarted.
    stale = tmp_path / "old.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()
    answer = EngineProbe(str(stale)).check()
    assert not answer.reachable
    assert answer.error is not None and answer.error.startswith(f"nothing answers on {stale}")
    assert not EngineProbe(str(tmp_path / "absent.sock")).check().reachable
    assert not EngineProbe(None).check().reachable


def test_probes_in_a_burst_share_one_ping(engine_socket: Path) -> None:
    now = [100.0]
    probe = EngineProbe(str(engine_socket), clock=lambda: now[0])
    before = _Ping.pings
    for _ in range(5):
        assert probe.check().reachable
    assert _Ping.pings == before + 1
    now[0] += 2
    probe.check()
    assert _Ping.pings == before + 2


def test_the_probe_is_found_from_docker_host() -> None:
    assert EngineProbe.from_environ({"DOCKER_HOST": "unix:///run/x.sock"}).socket_path == (
        "/run/x.sock"
    )
    assert EngineProbe.from_environ({}).socket_path is None


def _client(probe: EngineProbe | None) -> TestClient:
    service = make_service(FakeBackend(), io.StringIO())
    service.engine_probe = probe.check if probe else None
    return TestClient(create_app(service))


def test_health_stays_cheap_and_says_the_engine_only_when_asked(
    engine_socket: Path, tmp_path: Path
) -> None:
    with _client(EngineProbe(str(engine_socket))) as client:
        assert "engine_reachable" not in client.get("/health").json()
        asked = client.get("/health?engine=1")
        assert asked.status_code == 200
        assert asked.json()["engine_reachable"] is True

    with _client(EngineProbe(str(tmp_path / "gone.sock"))) as client:
        data = client.get("/health", params={"engine": "true"}).json()
        assert data["status"] == "ok"  # the service answers: /health itself is fine
        assert data["engine_reachable"] is False and "gone.sock" in data["engine_error"]
