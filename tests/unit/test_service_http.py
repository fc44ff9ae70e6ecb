"""The service over a real loopback socket (uvicorn with roscoe's protocol), with the fake
run backend: deadlines, malformed requests, bursts, disconnects and the drain."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from service_fakes import AUTH, FakeBackend, backend, log_stream, make_service, until

from roscoe.service import protocol
from roscoe.service.api import ExecutionService
from roscoe.service.app import create_app
from roscoe.service.server import Server, check_loopback, drain, listen
from roscoe.service.validate import MAX_BODY_BYTES

__all__ = ["backend", "log_stream"]  # fixtures, imported so pytest finds them here

RUN = json.dumps({"case": "a", "script": "s.py"}).encode()


@dataclass
class Live:
    service: ExecutionService
    port: int

    def connect(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.headers, answer.read()
        finally:
            connection.close()

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        """Send bytes as they are; everything the service answers before it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _status_and_json(answer: bytes) -> tuple[int, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.fixture
def start(backend: FakeBackend, log_stream: io.StringIO) -> Iterator[Any]:
    servers: list[tuple[Server, threading.Thread]] = []

    def start_one(concurrency: int = 1, queue: int = 1) -> Live:
        service = make_service(backend, log_stream, concurrency, queue)
        sock = listen(0)
        server = Server(create_app(service), sock, service, 0.1, service.log)
        thread = threading.Thread(target=server.uvicorn.run, kwargs={"sockets": [sock]})
        thread.start()
        live = Live(service, sock.getsockname()[1])
        until(lambda: server.uvicorn.started, "uvicorn to start")
        servers.append((server, thread))
        return live

    yield start_one
    backend.gate.set()
    for server, thread in servers:
        server.uvicorn.should_exit = True
        thread.join(20)


def test_health_and_a_run_over_http(start: Any) -> None:
    live: Live = start()
    status, headers, body = live.request("GET", "/health")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    assert headers["Connection"] == "close"
    status, _, body = live.request("POST", "/runs", RUN, **AUTH)
    assert (status, json.loads(body)["exit_code"]) == (200, 0)
    status, headers, _ = live.request("GET", "/runs")
    assert (status, headers["WWW-Authenticate"]) == (401, "Bearer")


def test_an_oversized_body_is_refused_and_the_client_sees_413(
    start: Any, backend: FakeBackend
) -> None:
    live: Live = start()
    status, _, body = live.request("POST", "/runs", b"x" * (MAX_BODY_BYTES + 1), **AUTH)
    assert status == 413
    assert "limit" in json.loads(body)["error"]
    status, _, _ = live.request("POST", "/runs", b"x" * (4 * MAX_BODY_BYTES), **AUTH)
    assert status == 413
    assert backend.runs == []


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40000, 431),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests_get_the_documented_json(start: Any, sent: bytes, status: int) -> None:
    live: Live = start()
    answered, body = _status_and_json(live.raw(sent))
    assert answered == status
    assert set(body) == {"error"}


def test_the_deadline_holds_for_the_whole_request(
    start: Any, monkeypatch: pytest.MonkeyPatch, backend: FakeBackend
) -> None:
    monkeypatch.setattr(protocol, "REQUEST_DEADLINE_S", 0.5)
    live: Live = start()
    # Headers that never end: 408 from the connection itself.
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        status, body = _status_and_json(_read_all(sock))
    assert status == 408
    assert "not received" in body["error"]
    # A body shorter than its Content-Length: 408 from the app, same deadline.
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        head = f"POST /runs HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
        sock.sendall(head.encode() + b"Content-Length: 100\r\n\r\n{")
        status, body = _status_and_json(_read_all(sock))
    assert status == 408
    assert backend.runs == []


def test_a_burst_gets_answers_never_resets(start: Any, backend: FakeBackend) -> None:
    live: Live = start(concurrency=2, queue=3)
    backend.gate.clear()
    statuses: list[int | str] = []
    retry_after: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            status, headers, _ = live.request("POST", "/runs", RUN, **AUTH)
        except OSError as exc:  # a reset or a refused connection: what must never happen
            status, headers = f"{type(exc).__name__}", http.client.HTTPMessage()
        with lock:
            statuses.append(status)
            if status == 429:
                retry_after.append(headers.get("Retry-After", ""))

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    until(lambda: statuses.count(429) == 95, "95 refusals", deadline_s=60)
    assert live.request("GET", "/health")[0] == 200
    backend.gate.set()
    for thread in threads:
        thread.join(60)
    assert sorted(set(statuses), key=str) == [200, 429]
    assert statuses.count(200) == 5
    assert all(int(value) > 0 for value in retry_after)


def test_a_client_leaving_a_waiting_run_cancels_it(start: Any, backend: FakeBackend) -> None:
    live: Live = start()
    backend.gate.clear()
    connection = live.connect()
    connection.request("POST", "/runs", RUN, AUTH)
    until(backend.started.is_set, "the run to start")
    connection.close()
    until(lambda: backend.records.get("run-1", {}).get("status") == "cancelled", "cancelled")
    until(lambda: live.service.scheduler.running == 0, "the slot to be free")
    assert backend.cancelled == ["run-1"]
    assert live.service.scheduler.watchers() == 0


def test_a_client_leaving_a_follow_stream_leaves_the_run_alone(
    start: Any, backend: FakeBackend
) -> None:
    live: Live = start()
    backend.gate.clear()
    no_wait = json.dumps({"case": "a", "script": "s.py", "wait": False}).encode()
    _status, _, body = live.request("POST", "/runs", no_wait, **AUTH)
    run_id = json.loads(body)["id"]
    connection = live.connect()
    connection.request("GET", f"/runs/{run_id}/output?follow=true", headers=AUTH)
    answer = connection.getresponse()
    assert answer.read1() == b"hi\n"
    assert live.service.stream_clients == 1
    answer.close()
    connection.close()
    until(lambda: live.service.stream_clients == 0, "the stream to be let go")
    until(lambda: live.service.scheduler.watchers() == 0, "the watcher to be let go")
    backend.gate.set()
    until(lambda: backend.records.get(run_id, {}).get("status") == "succeeded", "the run")


def test_the_drain_cancels_queued_runs_and_interrupts_running_ones(
    start: Any, backend: FakeBackend, log_stream: io.StringIO
) -> None:
    live: Live = start(concurrency=1, queue=2)
    backend.gate.clear()  # the runs would go on for ever
    answers: list[tuple[int, Any]] = []

    def waiting_client() -> None:
        status, _, body = live.request("POST", "/runs", RUN, **AUTH)
        answers.append((status, json.loads(body)))

    threads = [threading.Thread(target=waiting_client) for _ in range(2)]
    threads[0].start()
    until(backend.started.is_set, "the first run to start")
    threads[1].start()
    until(lambda: live.service.scheduler.waiting == 1, "one run queued")
    drain(live.service, 0.1, live.service.log)
    for thread in threads:
        thread.join(10)
    statuses = sorted((s, record["status"], record["exit_code"]) for s, record in answers)
    assert statuses == [(200, "cancelled", 130), (200, "interrupted", 130)]
    assert live.service.scheduler.running == 0
    assert live.request("POST", "/runs", RUN, **AUTH)[0] == 503
    assert live.request("GET", "/health")[2].count(b"stopping") == 1
    phases = [
        json.loads(line).get("phase")
        for line in log_stream.getvalue().splitlines()
        if '"shutdown"' in line
    ]
    assert phases == ["draining", "cancelling"]


def test_the_service_binds_to_loopback_only() -> None:
    assert check_loopback("127.0.0.1") == "127.0.0.1"
    for host in ("0.0.0.0", "", "192.168.1.10", "localhost", "::"):
        with pytest.raises(ValueError):
            check_loopback(host)
