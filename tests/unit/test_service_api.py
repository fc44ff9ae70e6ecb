"""The service's endpoints through the ASGI app (Starlette's TestClient), with the fake run
backend: routing, the token, limits, runs with and without waiting, cancel, streams."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from service_fakes import AUTH, TOKEN, FakeBackend, backend, log_stream, make_service, until

from roscoe.engine.fake import FakeEngine
from roscoe.runs.workspace import Workspace
from roscoe.service.api import DEFAULT_OUTPUT_TAIL, MAX_OUTPUT_TAIL, ExecutionService
from roscoe.service.app import create_app
from roscoe.service.streams import Utf8Chunks
from roscoe.service.validate import MAX_BODY_BYTES, RunRequest

__all__ = ["backend", "log_stream"]  # fixtures, imported so pytest finds them here

RUN = {"case": "a", "script": "s.py"}


@pytest.fixture
def service(backend: FakeBackend, log_stream: io.StringIO) -> ExecutionService:
    return make_service(backend, log_stream)


@pytest.fixture
def client(service: ExecutionService) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as test_client:
        yield test_client


def post_run(client: TestClient, data: object, **headers: str) -> httpx.Response:
    return client.post("/runs", content=json.dumps(data).encode(), headers={**AUTH, **headers})


@pytest.mark.parametrize("value", ["banana", ""])
def test_a_bad_query_parameter_is_the_documented_400(client: TestClient, value: str) -> None:
    answer = client.get(f"/health?engine={value}")
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "'engine': Input should be a valid boolean, unable to interpret input"
    }


def test_health_needs_no_token(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    data = answer.json()
    assert data["status"] == "ok"
    assert data["engine"] == {"kind": "fake", "version": "1"}
    assert (data["runs_in_flight"], data["runs_queued"]) == (0, 0)
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Connection"] == "close"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/runs"),
        ("POST", "/runs"),
        ("GET", "/runs/x"),
        ("DELETE", "/runs/x"),
        ("GET", "/runs/x/output"),
        ("GET", "/runs/x/events"),
        ("GET", "/cases"),
        ("GET", "/tools"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ],
)
def test_everything_else_needs_the_token(
    client: TestClient, backend: FakeBackend, headers: dict[str, str], method: str, path: str
) -> None:
    answer = client.request(method, path, content=json.dumps(RUN).encode(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert set(answer.json()) == {"error"}
    assert backend.runs == []


def test_an_authorised_run_returns_its_record_and_output(
    client: TestClient, backend: FakeBackend
) -> None:
    answer = post_run(client, {**RUN, "args": ["x"]})
    assert answer.status_code == 200
    record = answer.json()
    assert (record["status"], record["exit_code"]) == ("succeeded", 0)
    assert (record["output"], record["output_truncated"]) == ("hi\n", False)
    assert backend.runs[0].args == ("x",)
    listed = client.get("/runs?limit=5", headers=AUTH).json()
    assert [r["id"] for r in listed["runs"]] == ["run-1"]
    assert client.get("/runs/run-1", headers=AUTH).json()["status"] == "succeeded"
    output = client.get("/runs/run-1/output", headers=AUTH)
    assert (output.status_code, output.content) == (200, b"hi\n")
    assert output.headers["content-type"].startswith("text/plain")
    assert output.headers["X-Roscoe-Output-Truncated"] == "false"


def test_output_is_a_bounded_tail(client: TestClient, backend: FakeBackend) -> None:
    post_run(client, RUN)
    backend.outputs["run-1"] = b"x" * (DEFAULT_OUTPUT_TAIL + 10)
    backend.tails.clear()
    whole = client.get("/runs/run-1/output", headers=AUTH)
    assert len(whole.content) == DEFAULT_OUTPUT_TAIL
    assert whole.headers["X-Roscoe-Output-Truncated"] == "true"
    backend.outputs["run-1"] = b"0123456789"
    tail = client.get("/runs/run-1/output?tail=4", headers=AUTH)
    assert (tail.content, tail.headers["X-Roscoe-Output-Truncated"]) == (b"6789", "true")
    assert backend.tails == [DEFAULT_OUTPUT_TAIL, 4]  # the bound reaches the reader
    for bad in ("0", "-1", "abc", str(MAX_OUTPUT_TAIL + 1)):
        assert client.get(f"/runs/run-1/output?tail={bad}", headers=AUTH).status_code == 400
    assert backend.tails == [DEFAULT_OUTPUT_TAIL, 4]
    binary = backend.outputs["run-1"] = b"\xff\xfe"
    answer = client.get("/runs/run-1/output", headers=AUTH)
    assert (answer.content, answer.headers["content-type"]) == (binary, "application/octet-stream")


def test_core_backend_reads_only_the_tail_from_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved output is read from its end: never more than the bound into memory."""
    from roscoe.runs import records
    from roscoe.service.backend import CoreBackend, RunDefaults

    size = 3 * 1024 * 1024
    big = tmp_path / "output.log"
    with big.open("wb") as out:
        out.write(b"a" * (size - 5) + b"tail!")
    monkeypatch.setattr(records, "load_run", lambda run_id: None)  # the run exists
    monkeypatch.setattr(records, "run_dir", lambda run_id: tmp_path)
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
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


BAD_BODIES = [
    (b"{nope", 400, "not valid JSON"),
    (b"[]", 400, "JSON object"),
    (json.dumps({**RUN, "x": 1}).encode(), 400, "unknown field"),
    (json.dumps({"case": "../x", "script": "s.py"}).encode(), 400, ".."),
    (json.dumps({"case": "missing", "script": "s.py"}).encode(), 400, "does not exist"),
    (json.dumps({**RUN, "wait": "no"}).encode(), 400, "'wait'"),
    (b'{"case": "\\ud800", "script": "s.py"}', 400, "surrogate"),
    (b'{"case": "a", "script": "s.py", "args": ["\\udfff"]}', 400, "surrogate"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_BODIES)
def test_bad_input_is_refused_and_nothing_runs(
    client: TestClient, backend: FakeBackend, body: bytes, status: int, says: str
) -> None:
    answer = client.post("/runs", content=body, headers=AUTH)
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert "\n" not in answer.json()["error"]
    assert backend.runs == []


def test_body_limits(client: TestClient, backend: FakeBackend) -> None:
    too_big = client.post(
        "/runs", content=b"x" * (MAX_BODY_BYTES + 1), headers={**AUTH, "Content-Type": "x"}
    )
    assert too_big.status_code == 413
    assert str(MAX_BODY_BYTES) in too_big.json()["error"]

    def chunked() -> Iterator[bytes]:
        yield json.dumps(RUN).encode()

    assert client.post("/runs", content=chunked(), headers=AUTH).status_code == 411
    assert backend.runs == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/nope", 404),
        ("GET", "/runs/", 404),
        ("GET", "/runs/x/y", 404),
        ("GET", "/runs/x/output/more", 404),
        ("GET", "/runs/..", 404),
        ("GET", "/runs/-bad", 404),
        ("DELETE", "/runs", 405),
        ("POST", "/health", 405),
        ("HEAD", "/health", 405),
        ("OPTIONS", "/runs", 405),
        ("PUT", "/runs/x", 405),
        ("GET", "/runs?limit=0", 400),
        ("GET", "/runs?limit=abc", 400),
        ("GET", "/runs/unknown-run", 404),
        ("GET", "/runs/unknown-run/output?follow=maybe", 400),
        ("DELETE", "/runs/unknown-run", 404),
        ("GET", "/runs/unknown-run/events", 404),
    ],
)
def test_unknown_paths_and_wrong_methods(
    client: TestClient, method: str, path: str, status: int
) -> None:
    answer = client.request(method, path, headers=AUTH)
    assert answer.status_code == status
    if method != "HEAD":
        assert set(answer.json()) == {"error"}
    if status == 405:
        assert answer.headers["Allow"]


def test_queue_full_answers_429_with_retry_after(
    client: TestClient, service: ExecutionService, backend: FakeBackend
) -> None:
    backend.gate.clear()
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(post_run(client, RUN))) for _ in range(2)
    ]
    threads[0].start()
    until(lambda: service.scheduler.running == 1, "one run in flight")
    threads[1].start()
    until(lambda: service.scheduler.waiting == 1, "one run queued")
    third = post_run(client, RUN)
    assert third.status_code == 429
    assert int(third.headers["Retry-After"]) > 0
    health = client.get("/health").json()
    assert (health["runs_in_flight"], health["runs_queued"]) == (1, 1)
    backend.gate.set()
    for thread in threads:
        thread.join(10)
    assert [a.status_code for a in answers] == [200, 200]
    assert "roscoe_runs_refused_total 1" in client.get("/metrics", headers=AUTH).text


def test_a_run_without_waiting_answers_202_then_finishes(
    client: TestClient, backend: FakeBackend
) -> None:
    backend.gate.clear()
    answer = post_run(client, {**RUN, "wait": False})
    assert answer.status_code == 202
    run_id = answer.json()["id"]
    assert answer.headers["Location"] == f"/runs/{run_id}"
    assert answer.json()["status"] in ("queued", "running")
    until(lambda: client.get(f"/runs/{run_id}", headers=AUTH).json()["status"] == "running")
    backend.gate.set()
    until(lambda: client.get(f"/runs/{run_id}", headers=AUTH).json()["status"] == "succeeded")


def test_cancel_a_running_and_a_queued_run(
    client: TestClient, service: ExecutionService, backend: FakeBackend
) -> None:
    backend.gate.clear()
    running = post_run(client, {**RUN, "wait": False}).json()["id"]
    until(backend.started.is_set, "the first run to start")
    queued = post_run(client, {**RUN, "wait": False}).json()
    assert queued["status"] == "queued"
    answer = client.delete(f"/runs/{queued['id']}", headers=AUTH)
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["exit_code"]) == ("cancelled", 130)
    assert backend.records[queued["id"]]["status"] == "cancelled"
    answer = client.delete(f"/runs/{running}", headers=AUTH)
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["exit_code"]) == ("cancelled", 130)
    assert backend.cancelled == [running]
    assert backend.records[running]["status"] == "cancelled"
    assert len(backend.runs) == 1  # the queued one never ran
    assert client.delete(f"/runs/{running}", headers=AUTH).status_code == 409
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'roscoe_runs_total{status="cancelled"} 2' in metrics
    assert service.scheduler.running == 0


def test_follow_streams_the_output_until_the_run_ends(
    client: TestClient, backend: FakeBackend
) -> None:
    backend.gate.clear()
    backend.output = b"first line\n"
    run_id = post_run(client, {**RUN, "wait": False}).json()["id"]
    until(backend.started.is_set, "the run to start")
    with client.stream("GET", f"/runs/{run_id}/output?follow=true", headers=AUTH) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_bytes()
        assert next(chunks) == b"first line\n"
        backend.gate.set()
        assert b"".join(chunks) == b""  # the stream ends with the run
    # A finished run's follow is its saved output, at once.
    again = client.get(f"/runs/{run_id}/output?follow=true", headers=AUTH)
    assert again.content == b"first line\n"


def test_events_send_status_and_output_then_the_final_record(
    client: TestClient, backend: FakeBackend
) -> None:
    backend.gate.clear()
    backend.output = b"caf\xc3\xa9 \xff\n"  # not UTF-8 as a whole: base64
    run_id = post_run(client, {**RUN, "wait": False}).json()["id"]
    until(backend.started.is_set, "the run to start")
    events: list[tuple[str, Any]] = []
    with client.stream("GET", f"/runs/{run_id}/events", headers=AUTH) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if kind == "output":
                    backend.gate.set()
    assert events[0][0] == "status"
    assert events[0][1]["status"] == "running"
    output = [data for kind, data in events if kind == "output"]
    assert output == [{"encoding": "base64", "data": base64.b64encode(backend.output).decode()}]
    assert events[-1][0] == "status"
    assert events[-1][1]["status"] == "succeeded"


def test_utf8_chunks_hold_a_split_character_back() -> None:
    chunks = Utf8Chunks()
    assert chunks.feed(b"caf\xc3") == {"encoding": "utf-8", "data": "caf"}
    assert chunks.feed(b"\xa9!") == {"encoding": "utf-8", "data": "\u00e9!"}
    assert chunks.feed(b"\xc3") is None
    assert chunks.flush() == {"encoding": "base64", "data": "ww=="}


def test_discovery_and_metrics(client: TestClient) -> None:
    assert client.get("/cases", headers=AUTH).json()["cases"][0]["name"] == "a"
    tools = client.get("/tools", headers=AUTH).json()["tools"]
    assert tools == [{"name": "s.py", "kind": "python", "description": "Says hi."}]
    post_run(client, RUN)
    metrics = client.get("/metrics", headers=AUTH)
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'roscoe_runs_total{status="succeeded"} 1' in text
    assert "roscoe_run_duration_seconds_count 1" in text
    assert 'roscoe_run_duration_seconds_bucket{le="0.25"} 1' in text
    assert "roscoe_runs_in_flight 0" in text
    assert 'roscoe_build_info{engine="fake",engine_version="1",version="0.0"} 1' in text


def test_the_log_has_one_redacted_json_line_per_event(
    client: TestClient, log_stream: io.StringIO
) -> None:
    post_run(client, {**RUN, "env": {"API_TOKEN": "s3cr3t-value"}})
    client.get("/runs", headers={"Authorization": "Bearer bogus-credential-123"})
    text = log_stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    events = [line["event"] for line in lines]
    assert events == ["run_started", "run_finished", "request", "request"]
    request = lines[2]
    assert (request["method"], request["path"], request["status"]) == ("POST", "/runs", 200)
    assert request["run_id"] == "run-1"
    assert request["duration_ms"] >= 0
    assert lines[1]["status"] == "succeeded"
    assert lines[3]["status"] == 401
    for secret in ("s3cr3t-value", TOKEN, "bogus-credential-123"):
        assert secret not in text


def test_a_failure_in_the_run_core_is_an_answer(client: TestClient, backend: FakeBackend) -> None:
    from roscoe.errors import EngineError

    backend.fail_with = EngineError("the engine went away")
    answer = post_run(client, RUN)
    assert answer.status_code == 503
    assert "the engine went away" in answer.json()["error"]
    backend.fail_with = RuntimeError("a bug")
    answer = post_run(client, RUN)
    assert answer.status_code == 500
    assert "roscoe logs" in answer.json()["error"]
    # Without waiting, the caller holds an id: a record says what happened.
    accepted = post_run(client, {**RUN, "wait": False}).json()
    until(lambda: client.get(f"/runs/{accepted['id']}", headers=AUTH).json()["status"] == "error")
    assert client.get(f"/runs/{accepted['id']}", headers=AUTH).json()["exit_code"] == 125


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("ImageError", 4),  # as `roscoe run` exits: the image cannot be had
        ("IsolationError", 5),
        ("EngineError", 3),  # no engine to be had
    ],
)
def test_a_run_that_fails_before_it_starts_keeps_its_own_exit_code(
    client: TestClient, backend: FakeBackend, error: str, code: int
) -> None:
    from roscoe import errors

    backend.fail_with = getattr(errors, error)("it failed", hint="a hint")
    accepted = post_run(client, {**RUN, "wait": False}).json()
    until(lambda: client.get(f"/runs/{accepted['id']}", headers=AUTH).json()["status"] == "error")
    record = client.get(f"/runs/{accepted['id']}", headers=AUTH).json()
    assert record["exit_code"] == code
    assert "it failed" in record["message"]


def test_openapi_lists_every_endpoint_the_docs_describe(client: TestClient) -> None:
    import re

    document = client.get("/openapi.json", headers=AUTH).json()
    served = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    docs = (Path(__file__).parents[2] / "docs" / "service-api.md").read_text()
    table = docs.split("## Endpoints", 1)[1].split("\n\n", 2)[1]
    described = set(re.findall(r"^\| `([A-Z]+ /[^`?]*)", table, re.MULTILINE))
    assert described == served


def test_mounted_apps_pass_through_the_frame_and_the_token_guard(
    service: ExecutionService,
) -> None:
    from roscoe.service.frame import TokenGuard

    async def hello(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    app = create_app(service, mounts={"/extra": TokenGuard(hello, service)})
    with TestClient(app) as client:
        assert client.get("/extra/x").status_code == 401
        answer = client.get("/extra/x", headers=AUTH)
        assert (answer.status_code, answer.text) == (200, "hello")
        assert answer.headers["Connection"] == "close"


def test_a_shutdown_stops_a_run_taken_from_the_line_before_it_says_running(
    backend: FakeBackend, log_stream: io.StringIO
) -> None:
    # Between leaving the line and its thread marking it running, a run is in flight: a
    # shutdown that missed it would leave its container behind.
    drafting, go_on = threading.Event(), threading.Event()
    plain = backend.draft_record

    def slow_draft(request: RunRequest, run_id: str, status: str) -> dict[str, Any]:
        if status == "running":
            drafting.set()
            go_on.wait(10)
        return plain(request, run_id, status)

    backend.draft_record = slow_draft  # type: ignore[method-assign]
    backend.gate.clear()  # the run goes on until it is stopped
    service = make_service(backend, log_stream)
    live = service.submit(RunRequest(case="a", script="s.py", wait=False))
    assert drafting.wait(10) and live.status == "queued"
    assert service.close() == []  # not in the line any more: nothing to cancel there
    assert service.interrupt_running() == [live.id]
    go_on.set()
    assert live.done.wait(10)
    assert live.record is not None and live.record["status"] == "interrupted"
    assert backend.cancelled == [live.id]


def test_a_run_under_way_elsewhere_cannot_be_cancelled_here_and_says_where_to_look(
    client: TestClient, backend: FakeBackend
) -> None:
    # Recorded running by someone else (the CLI, another runner): not in this scheduler.
    backend.records["20261201-120000-abcdef12"] = {
        "id": "20261201-120000-abcdef12",
        "case": "a",
        "status": "running",
    }
    answer = client.delete("/runs/20261201-120000-abcdef12", headers=AUTH)
    assert answer.status_code == 409
    said = answer.json()["error"]
    assert "was not started here" in said
    assert "`roscoe runs show 20261201-120000-abcdef12`" in said
