"""The agent tool's text, against a tiny local stdlib HTTP server standing in for the service."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from roscoe.client import format_record, list_cases, list_tools, run_case_script

TOKEN = "client-test-token-123456"


class StubService(HTTPServer):
    """Answers POST /runs with whatever the test put in `answer`; remembers the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.answer: tuple[int, dict[str, Any], dict[str, str]] = (200, {}, {})
        self.seen: list[tuple[str, dict[str, Any], str | None]] = []


class _StubHandler(BaseHTTPRequestHandler):
    server: StubService

    def do_GET(self) -> None:
        self.server.seen.append((self.path, {}, self.headers.get("Authorization")))
        self._answer()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body, self.headers.get("Authorization")))
        self._answer()

    def _answer(self) -> None:
        status, data, headers = self.server.answer
        payload = json.dumps(data).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubService]:
    server = StubService()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    monkeypatch.setenv("ROSCOE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("ROSCOE_TOKEN", TOKEN)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def record(**fields: Any) -> dict[str, Any]:
    base = {"id": "20261121-000000-abcd", "status": "succeeded", "exit_code": 0}
    return {**base, "duration_s": 1.25, "timed_out": False, "output": "", **fields}


def test_success_shows_the_output_and_sends_split_arguments(stub: StubService) -> None:
    stub.answer = (200, record(output="42 words\n"), {})
    text = run_case_script("acme", "count.py", "--top 5 'notes file.txt'")
    assert text.startswith("Success:")
    assert "exit code 0" in text
    assert "42 words" in text
    path, body, auth = stub.seen[0]
    assert path == "/runs"
    assert body == {"case": "acme", "script": "count.py", "args": ["--top", "5", "notes file.txt"]}
    assert auth == f"Bearer {TOKEN}"


def test_script_failure_gives_the_exit_code_and_output(stub: StubService) -> None:
    stub.answer = (200, record(status="failed", exit_code=3, output="boom\n"), {})
    text = run_case_script("acme", "fail.py")
    assert text.startswith("Failure:")
    assert "exit code 3" in text
    assert "boom" in text


def test_timeout_is_reported_as_such(stub: StubService) -> None:
    stub.answer = (200, record(status="timed_out", exit_code=124, timed_out=True), {})
    assert run_case_script("acme", "slow.py").startswith("Timeout:")


def test_401_says_token_mismatch(stub: StubService) -> None:
    stub.answer = (401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})
    text = run_case_script("acme", "count.py")
    assert "token mismatch" in text
    assert TOKEN not in text
    assert "roscoe server restart" in text


def test_400_passes_the_reason_on(stub: StubService) -> None:
    stub.answer = (400, {"error": "case 'nope' does not exist"}, {})
    text = run_case_script("nope", "count.py")
    assert text.startswith("Error:")
    assert "case 'nope' does not exist" in text


def test_429_says_busy_and_when_to_retry(stub: StubService) -> None:
    stub.answer = (429, {"error": "busy"}, {"Retry-After": "5"})
    text = run_case_script("acme", "count.py")
    assert text.startswith("Busy:")
    assert "Wait 5 seconds" in text
    assert "retry" in text


def test_a_dropped_connection_says_busy_not_down(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def reset_one() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: the client gets a reset

    thread = threading.Thread(target=reset_one)
    thread.start()
    monkeypatch.setenv("ROSCOE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("ROSCOE_TOKEN", TOKEN)
    try:
        text = run_case_script("acme", "count.py")
    finally:
        thread.join(10)
        listener.close()
    assert text.startswith("Busy:"), text
    assert "roscoe server start" not in text


def test_list_cases_and_tools_as_text(stub: StubService) -> None:
    stub.answer = (200, {"cases": [{"name": "acme", "modified_at": "2026-01-01T00:00:00Z"}]}, {})
    text = list_cases()
    assert text.splitlines() == ["1 case(s):", "- acme (modified 2026-01-01T00:00:00Z)"]
    tools = [{"name": "sub/count.py", "kind": "python", "description": "Counts words."}]
    stub.answer = (200, {"tools": tools}, {})
    assert list_tools().splitlines()[1] == "- sub/count.py (python): Counts words."
    assert [path for path, _, _ in stub.seen] == ["/cases", "/tools"]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in stub.seen)
    stub.answer = (200, {"tools": []}, {})
    assert list_tools().startswith("No tools")
    stub.answer = (401, {"error": "missing or wrong bearer token"}, {})
    assert "token mismatch" in list_cases()


def test_a_cancelled_run_says_so() -> None:
    record = {"status": "cancelled", "exit_code": 130, "id": "r1", "message": "cancelled: x"}
    text = format_record(record, "'s.py' on case 'c'")
    assert text.startswith("Cancelled: 's.py' on case 'c' was cancelled before it finished")


def test_service_down_advises_server_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ROSCOE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ROSCOE_TOKEN", TOKEN)
    text = run_case_script("acme", "count.py")
    assert text.startswith("System error:")
    assert "roscoe server start" in text


def test_no_token_anywhere_advises_server_start(
    monkeypatch: pytest.MonkeyPatch, isolated_dirs: Path
) -> None:
    monkeypatch.setenv("ROSCOE_URL", "http://127.0.0.1:9")
    text = run_case_script("acme", "count.py")
    assert "roscoe server start" in text
    assert str(isolated_dirs / "service-token") in text


def test_the_token_file_in_the_data_dir_is_used(
    stub: StubService, monkeypatch: pytest.MonkeyPatch, isolated_dirs: Path
) -> None:
    monkeypatch.delenv("ROSCOE_TOKEN")
    isolated_dirs.mkdir(parents=True)
    (isolated_dirs / "service-token").write_text("from-the-file-token\n")
    stub.answer = (200, record(), {})
    run_case_script("acme", "count.py")
    assert stub.seen[0][2] == "Bearer from-the-file-token"


def test_unsplittable_arguments_are_an_error_not_an_exception() -> None:
    assert run_case_script("acme", "count.py", "'unclosed").startswith("Error:")


def test_truncated_output_is_marked() -> None:
    text = format_record(record(output="tail", output_truncated=True), "'s.py' on case 'a'")
    assert "earlier output cut" in text


def test_a_warning_in_the_record_reaches_the_agent() -> None:
    warning = "warning: a process of the run was killed at the memory limit (2g); the script..."
    text = format_record(record(message=warning), "count.py")
    assert text.startswith("Success:")
    assert f"Note: {warning}." in text.splitlines()[0]


def test_a_run_the_service_lost_track_of_is_not_called_a_failure() -> None:
    text = format_record(record(status="unknown", exit_code=125), "count.py")
    assert text.startswith("Unknown: the container engine stopped answering while count.py ran")
    assert "may still be running" in text
