"""The /mcp endpoint over a real loopback socket (the service's app on uvicorn), with the
service's fake run backend and the official MCP client: the token, the tools, and MCP runs
going through the service's own scheduler."""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")
pytest.importorskip("fastapi")

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from service_fakes import (
    AUTH,
    TOKEN,
    FakeBackend,
    backend,
    log_stream,
    make_service,
    until,
)

from roscoe.access import tokens
from roscoe.config import paths
from roscoe.mcp.http import McpEndpoint
from roscoe.service.api import ExecutionService
from roscoe.service.app import create_app
from roscoe.service.server import Server, listen

__all__ = ["backend", "log_stream"]  # fixtures, imported so pytest finds them here

INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
).encode()
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Live:
    service: ExecutionService
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.headers, answer.read()
        finally:
            connection.close()


@pytest.fixture
def live(backend: FakeBackend, log_stream: io.StringIO) -> Iterator[Live]:
    service = make_service(
        backend, log_stream, concurrency=1, queue=0, tokens_file=paths.tokens_file()
    )
    endpoint = McpEndpoint(service)
    app = create_app(service, lifespans=[endpoint.lifespan])
    endpoint.install(app)
    sock = listen(0)
    server = Server(app, sock, service, 0.1, service.log)
    thread = threading.Thread(target=server.uvicorn.run, kwargs={"sockets": [sock]})
    thread.start()
    until(lambda: server.uvicorn.started, "uvicorn to start")
    yield Live(service, sock.getsockname()[1])
    backend.gate.set()
    server.uvicorn.should_exit = True
    thread.join(20)


@asynccontextmanager
async def session_on(live: Live, token: str = TOKEN) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=30)) as client,
        streamable_http_client(live.url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def drive(live: Live, steps: Any, token: str = TOKEN) -> Any:
    async def main() -> Any:
        with anyio.fail_after(30):
            async with session_on(live, token) as session:
                return await steps(session)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_mcp_needs_the_services_token(live: Live, token: str | None) -> None:
    headers = dict(ACCEPT)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, answer_headers, body = live.post("/mcp", INITIALIZE, headers)
    assert status == 401
    assert json.loads(body) == {"error": "missing or wrong bearer token"}
    assert answer_headers["WWW-Authenticate"] == "Bearer"


def test_exactly_mcp_is_served_without_a_redirect(live: Live) -> None:
    status, _headers, _body = live.post("/mcp", INITIALIZE, {**ACCEPT, **AUTH})
    assert status == 200
    assert live.post("/mcp/", INITIALIZE, {**ACCEPT, **AUTH})[0] == 404


def test_the_tools_over_http(live: Live, backend: FakeBackend, log_stream: io.StringIO) -> None:
    async def steps(session: ClientSession) -> Any:
        listed = await session.list_tools()
        cases = await session.call_tool("list_cases", {})
        tools = await session.call_tool("list_tools", {})
        ran = await session.call_tool("run_script", {"case": "a", "script": "s.py"})
        refused = await session.call_tool("run_script", {"case": "missing", "script": "s.py"})
        return listed, cases, tools, ran, refused

    listed, cases, tools, ran, refused = drive(live, steps)
    assert {t.name for t in listed.tools} >= {"run_script", "start_run", "cancel_run"}
    assert cases.structured_content == {
        "cases": [{"name": "a", "modified_at": "2026-01-01T00:00:00.000Z"}]
    }
    assert "s.py (python): Says hi." in text_of(tools)
    assert ran.structured_content["status"] == "succeeded"
    assert "hi" in text_of(ran)
    assert refused.is_error
    assert text_of(refused) == (
        "Error: case 'missing' does not exist\nhint: cases are the folders in x"
    )
    assert [r.case for r in backend.runs] == ["a"]
    logged = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    submitted = [e for e in logged if e["event"] == "mcp_run_submitted"]
    assert submitted[0]["principal"] == "admin"
    assert TOKEN not in log_stream.getvalue()


def test_mcp_runs_share_the_services_slots_and_cancel(live: Live, backend: FakeBackend) -> None:
    backend.gate.clear()

    async def steps(session: ClientSession) -> Any:
        started = await session.call_tool("start_run", {"case": "a", "script": "s.py"})
        await anyio.to_thread.run_sync(backend.started.wait, 10)
        busy = await session.call_tool("start_run", {"case": "a", "script": "s.py"})
        rest = await anyio.to_thread.run_sync(
            lambda: live.post("/runs", b'{"case": "a", "script": "s.py"}', {**AUTH, **ACCEPT})
        )
        running = await session.call_tool("get_run", {"run_id": started.structured_content["id"]})
        cancelled = await session.call_tool(
            "cancel_run", {"run_id": started.structured_content["id"]}
        )
        return started, busy, rest, running, cancelled

    started, busy, rest, running, cancelled = drive(live, steps)
    assert started.structured_content["status"] in ("queued", "running")
    assert busy.is_error
    assert "1 runs in flight and 0 waiting" in text_of(busy)
    assert rest[0] == 429
    assert running.structured_content["status"] == "running"
    assert (cancelled.structured_content["status"], cancelled.structured_content["exit_code"]) == (
        "cancelled",
        130,
    )
    assert backend.cancelled == [started.structured_content["id"]]


def test_a_scoped_token_gets_the_same_rules_over_mcp(
    live: Live, backend: FakeBackend, log_stream: io.StringIO
) -> None:
    elsewhere = tokens.create("elsewhere", cases=["b*"], tools=["s.py"]).token
    theirs = live.post("/runs", b'{"case": "a", "script": "s.py"}', {**AUTH, **ACCEPT})
    run_id = json.loads(theirs[2])["id"]

    async def steps(session: ClientSession) -> Any:
        cases = await session.call_tool("list_cases", {})
        ran = await session.call_tool("run_script", {"case": "a", "script": "s.py"})
        seen = await session.call_tool("get_run", {"run_id": run_id})
        cancelled = await session.call_tool("cancel_run", {"run_id": run_id})
        return cases, ran, seen, cancelled

    cases, ran, seen, cancelled = drive(live, steps, token=elsewhere)
    assert cases.structured_content == {"cases": []}
    assert ran.is_error
    assert text_of(ran) == "Error: token 'elsewhere' may not use case 'a' (its cases: b*)"
    assert seen.is_error and f"no run {run_id}" in text_of(seen)
    assert cancelled.is_error and f"no run {run_id}" in text_of(cancelled)
    assert [r.case for r in backend.runs] == ["a"]  # the admin's only
    tokens.revoke("elsewhere")
    headers = {**ACCEPT, "Authorization": f"Bearer {elsewhere}"}
    status, _headers, body = live.post("/mcp", INITIALIZE, headers)
    assert status == 401
    assert json.loads(body)["error"].startswith("token 'elsewhere' was revoked at")
    assert elsewhere not in log_stream.getvalue()
