"""The endpoints, through ExecutionService.handle() and over real loopback HTTP, with a fake
run backend (no engine)."""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.engine.fake import FakeEngine
from roscoe.errors import UsageError
from roscoe.runs.workspace import Workspace
from roscoe.service.api import ExecutionService, Response
from roscoe.service.httpd import ServiceServer, check_loopback
from roscoe.service.limiter import RunLimiter
from roscoe.service.log import JsonLog
from roscoe.service.validate import MAX_BODY_BYTES, RunRequest

TOKEN = "unit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeBackend:
    """The run core's place: records calls, runs nothing, can be told to block."""

    def __init__(self) -> None:
        self.runs: list[RunRequest] = []
        self.gate = threading.Event()
        self.gate.set()
        self.records: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.outputs: dict[str, bytes] = {}
        self.tails: list[int] = []
        self._n = 0

    def new_run_id(self) -> str:
        self._n += 1
        return f"run-{self._n}"

    def check(self, request: RunRequest) -> None:
        if request.case == "missing":
            raise UsageError("case 'missing' does not exist", hint="cases are the folders in x")

    def run(self, request: RunRequest, run_id: str, cancel: threading.Event) -> dict[str, Any]:
        self.runs.append(request)
        while not self.gate.wait(0.01):
            if cancel.is_set():
                self.cancelled.append(run_id)
                return {"id": run_id, "status": "interrupted", "exit_code": 130}
        record = {"id": run_id, "status": "succeeded", "exit_code": 0, "output": "hi\n"}
        self.records[run_id] = record
        return record

    def list_runs(self, limit: int) -> list[dict[str, Any]]:
        return list(reversed(self.records.values()))[:limit]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self.records.get(run_id)

    def read_output(self, run_id: str, tail_bytes: int) -> tuple[bytes, bool] | None:
        self.tails.append(tail_bytes)
        if run_id not in self.records:
            return None
        output = self.outputs.get(run_id, b"hi\n")
        return output[-tail_bytes:], len(output) > tail_bytes


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def service(backend: FakeBackend, log_stream: io.StringIO) -> ExecutionService:
    return ExecutionService(
        token=TOKEN,
        limiter=RunLimiter(1, 1),
        backend=backend,
        health_info={"version": "0.0", "engine": {"kind": "fake", "version": "1"}},
        log=JsonLog(log_stream, secrets=[TOKEN]),
    )


def call(
    service: ExecutionService,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Response:
    sent = dict(headers or {})
    if method == "POST":
        sent.setdefault("Content-Length", str(len(body)))
    return service.handle(method, path, sent, io.BytesIO(body).read)


def post_run(service: ExecutionService, data: object, **headers: str) -> Response:
    return call(service, "POST", "/runs", json.dumps(data).encode(), {**AUTH, **headers})


def test_health_needs_no_token(service: ExecutionService) -> None:
    answer = call(service, "GET", "/health")
    assert answer.status == 200
    data = json.loads(answer.body)
    assert data["status"] == "ok"
    assert data["engine"] == {"kind": "fake", "version": "1"}
    assert (data["runs_in_flight"], data["runs_queued"]) == (0, 0)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}]
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/runs"), ("POST", "/runs"), ("GET", "/runs/x")]
)
def test_everything_else_needs_the_token(
    service: ExecutionService, backend: FakeBackend, headers: dict[str, str], method: str, path: str
) -> None:
    answer = call(service, method, path, b'{"case": "a", "script": "s.py"}', headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert backend.runs == []


def test_an_authorised_run_returns_its_record(
    service: ExecutionService, backend: FakeBackend
) -> None:
    answer = post_run(service, {"case": "a", "script": "s.py", "args": ["x"]})
    assert answer.status == 200
    assert json.loads(answer.body)["status"] == "succeeded"
    assert backend.runs == [RunRequest("a", "s.py", ("x",))]
    listed = json.loads(call(service, "GET", "/runs?limit=5", headers=AUTH).body)
    assert [r["id"] for r in listed["runs"]] == ["run-1"]
    assert call(service, "GET", "/runs/run-1", headers=AUTH).status == 200
    output = call(service, "GET", "/runs/run-1/output", headers=AUTH)
    assert (output.status, output.body) == (200, b"hi\n")
    assert output.content_type.startswith("text/plain")
    assert output.headers["X-Roscoe-Output-Truncated"] == "false"


def test_output_is_a_bounded_tail(service: ExecutionService, backend: FakeBackend) -> None:
    from roscoe.service.api import DEFAULT_OUTPUT_TAIL, MAX_OUTPUT_TAIL

    post_run(service, {"case": "a", "script": "s.py"})
    backend.outputs["run-1"] = b"x" * (DEFAULT_OUTPUT_TAIL + 10)
    whole = call(service, "GET", "/runs/run-1/output", headers=AUTH)
    assert len(whole.body) == DEFAULT_OUTPUT_TAIL
    assert whole.headers["X-Roscoe-Output-Truncated"] == "true"
    backend.outputs["run-1"] = b"0123456789"
    tail = call(service, "GET", "/runs/run-1/output?tail=4", headers=AUTH)
    assert (tail.body, tail.headers["X-Roscoe-Output-Truncated"]) == (b"6789", "true")
    assert backend.tails == [DEFAULT_OUTPUT_TAIL, 4]  # the bound reaches the reader
    for bad in ("0", "-1", "abc", str(MAX_OUTPUT_TAIL + 1)):
        refused = call(service, "GET", f"/runs/run-1/output?tail={bad}", headers=AUTH)
        assert refused.status == 400, bad
    assert backend.tails == [DEFAULT_OUTPUT_TAIL, 4]


def test_core_backend_reads_only_the_tail_from_the_end(tmp_path, monkeypatch) -> None:
    """The saved output is read from its end: never more than the bound into memory."""
    from roscoe.runs import records
    from roscoe.service.backend import CoreBackend, RunDefaults

    size = 3 * 1024 * 1024
    big = tmp_path / "output.log"
    with big.open("wb") as out:
        out.write(b"a" * (size - 5) + b"tail!")
    monkeypatch.setattr(
        records, "load_run", lambda run_id: type("R", (), {"output_file": big.name})
    )
    monkeypatch.setattr(records, "run_dir", lambda run_id: tmp_path)
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if self == big:
            real_read = handle.read
            handle.read = lambda n=-1: (reads.append(n), real_read(n))[1]
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    backend = CoreBackend(FakeEngine, Workspace(tmp_path), RunDefaults(image="x"))
    output, truncated = backend.read_output("20260101-000000-abcdef12", 5)
    assert (output, truncated) == (b"tail!", True)
    assert reads == [5]


def test_bad_input_is_refused_and_nothing_runs(
    service: ExecutionService, backend: FakeBackend
) -> None:
    assert call(service, "POST", "/runs", b"{nope", AUTH).status == 400
    assert post_run(service, {"case": "../x", "script": "s.py"}).status == 400
    missing = post_run(service, {"case": "missing", "script": "s.py"})
    assert missing.status == 400
    assert "does not exist" in json.loads(missing.body)["error"]
    too_big = call(
        service, "POST", "/runs", b"", {**AUTH, "Content-Length": str(MAX_BODY_BYTES + 1)}
    )
    assert too_big.status == 413
    assert backend.runs == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/nope", 404),
        ("GET", "/runs/x/y", 404),
        ("GET", "/runs/x/output/more", 404),
        ("GET", "/runs/..", 404),
        ("DELETE", "/runs", 405),
        ("POST", "/health", 405),
        ("PUT", "/runs/x", 405),
        ("GET", "/runs?limit=0", 400),
        ("GET", "/runs?limit=abc", 400),
        ("GET", "/runs/unknown-run", 404),
    ],
)
def test_unknown_paths_and_wrong_methods(
    service: ExecutionService, method: str, path: str, status: int
) -> None:
    answer = call(service, method, path, headers=AUTH)
    assert answer.status == status
    assert set(json.loads(answer.body)) == {"error"}
    if status == 405:
        assert answer.headers["Allow"]


def test_queue_full_answers_429_with_retry_after(
    service: ExecutionService, backend: FakeBackend
) -> None:
    backend.gate.clear()
    answers: list[Response] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(post_run(service, {"case": "a", "script": "s.py"}))
        )
        for _ in range(2)
    ]
    threads[0].start()
    _until(lambda: service.limiter.running == 1)
    threads[1].start()
    _until(lambda: service.limiter.waiting == 1)
    third = post_run(service, {"case": "a", "script": "s.py"})
    assert third.status == 429
    assert int(third.headers["Retry-After"]) > 0
    health = json.loads(call(service, "GET", "/health").body)
    assert (health["runs_in_flight"], health["runs_queued"]) == (1, 1)
    backend.gate.set()
    for thread in threads:
        thread.join(10)
    assert [a.status for a in answers] == [200, 200]


def test_cancel_all_stops_runs_in_flight(service: ExecutionService, backend: FakeBackend) -> None:
    backend.gate.clear()
    answers: list[Response] = []
    thread = threading.Thread(
        target=lambda: answers.append(post_run(service, {"case": "a", "script": "s.py"}))
    )
    thread.start()
    _until(lambda: service.limiter.running == 1 and backend.runs)
    assert service.cancel_all() == ["run-1"]
    thread.join(10)
    assert backend.cancelled == ["run-1"]
    assert json.loads(answers[0].body)["status"] == "interrupted"


def test_the_log_has_one_redacted_json_line_per_event(
    service: ExecutionService, log_stream: io.StringIO
) -> None:
    post_run(service, {"case": "a", "script": "s.py", "env": {"API_TOKEN": "s3cr3t-value"}})
    call(service, "GET", "/runs", headers={"Authorization": "Bearer bogus-credential-123"})
    text = log_stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    events = [line["event"] for line in lines]
    assert events == ["run_started", "run_finished", "request", "request"]
    request = lines[2]
    assert (request["method"], request["path"], request["status"]) == ("POST", "/runs", 200)
    assert request["duration_ms"] >= 0
    assert lines[1]["status"] == "succeeded"
    for secret in ("s3cr3t-value", TOKEN, "bogus-credential-123"):
        assert secret not in text


def _until(predicate: object) -> None:
    event = threading.Event()
    for _ in range(1000):
        if predicate():  # type: ignore[operator]
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


# -- the HTTP layer on a real loopback socket -------------------------------------------------
@pytest.fixture
def server(service: ExecutionService) -> Iterator[ServiceServer]:
    running = ServiceServer(service, 0)
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join(10)


def _request(
    server: ServiceServer, method: str, path: str, body: bytes = b"", **headers: str
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.request(method, path, body=body or None, headers=headers)
    return connection.getresponse()


def test_http_layer_serves_health_and_runs(server: ServiceServer) -> None:
    health = _request(server, "GET", "/health")
    assert health.status == 200
    assert json.loads(health.read())["status"] == "ok"
    run = _request(server, "POST", "/runs", b'{"case": "a", "script": "s.py"}', **AUTH)
    assert run.status == 200
    assert json.loads(run.read())["exit_code"] == 0
    refused = _request(server, "GET", "/runs")
    assert refused.status == 401
    assert refused.getheader("WWW-Authenticate") == "Bearer"


def test_http_layer_refuses_an_oversized_body_and_the_client_sees_413(
    server: ServiceServer, backend: FakeBackend
) -> None:
    answer = _request(server, "POST", "/runs", b"x" * (MAX_BODY_BYTES + 1), **AUTH)
    assert answer.status == 413
    assert "limit" in json.loads(answer.read())["error"]
    assert backend.runs == []


def test_http_layer_answers_unknown_methods_with_405(server: ServiceServer) -> None:
    assert _request(server, "PATCH", "/runs", **AUTH).status == 405


def test_the_service_binds_to_loopback_only() -> None:
    assert check_loopback("127.0.0.1") == "127.0.0.1"
    for host in ("0.0.0.0", "", "192.168.1.10", "localhost", "::"):
        with pytest.raises(ValueError):
            check_loopback(host)


def test_shutdown_cancels_runs_still_going_after_the_grace(
    service: ExecutionService, backend: FakeBackend, log_stream: io.StringIO
) -> None:
    from roscoe.service.main import _drain

    backend.gate.clear()  # the run would go on for ever
    answers: list[Response] = []
    thread = threading.Thread(
        target=lambda: answers.append(post_run(service, {"case": "a", "script": "s.py"}))
    )
    thread.start()
    _until(lambda: backend.runs)
    _drain(service, 0.1, service.log)
    thread.join(10)
    assert backend.cancelled == ["run-1"]
    assert service.limiter.running == 0
    assert post_run(service, {"case": "a", "script": "s.py"}).status == 503
    phases = [
        json.loads(line).get("phase")
        for line in log_stream.getvalue().splitlines()
        if '"shutdown"' in line
    ]
    assert phases == ["draining", "cancelling"]
