"""The runner's /mcp endpoint (streamable HTTP), driven by the official MCP client, on real
engines: discovery, runs that wait and runs that do not, cancel, refusals as tool errors,
the same scheduler as POST /runs (cap, records), and the token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from service_fixtures import (
    DEMO_CASE,
    DEMO_SCRIPT,
    LiveService,
    start_service,
)

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.engine, pytest.mark.image]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents" / "mcp_demo.py"
MCP_TOOLS = {"list_cases", "list_tools", "run_script", "start_run", "get_run", "cancel_run"}
DEADLINE_S = 60.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


@asynccontextmanager
async def mcp_http(live: LiveService) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {live.token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"{live.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def drive(live: LiveService, steps: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        with anyio.fail_after(DEADLINE_S * 2):
            async with mcp_http(live) as session:
                return await steps(session)

    try:
        return anyio.run(main)
    except BaseException:
        print("--- service log ---\n" + live.logs())
        raise


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    with anyio.fail_after(DEADLINE_S):
        while not await check():
            await anyio.sleep(0.2)


@pytest.fixture
def live(start_service: Any) -> LiveService:
    return start_service(concurrency=1, queue=1)


def test_the_token_guards_mcp(live: LiveService) -> None:
    body = json.dumps(INITIALIZE).encode()
    headers = {"Accept": "application/json, text/event-stream"}
    for token in (None, "not-the-token"):
        answer = live.request("POST", "/mcp", body, token=token, headers=headers)
        assert answer.status == 401, answer.body
        assert answer.json() == {"error": "missing or wrong bearer token"}
        assert answer.headers.get("WWW-Authenticate") == "Bearer"
    ok = live.request("POST", "/mcp", body, headers=headers)
    assert ok.status == 200, ok.body


def test_discovery_and_a_waiting_run_with_progress(live: LiveService) -> None:
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async def steps(session: ClientSession) -> Any:
        listed = await session.list_tools()
        cases = await session.call_tool("list_cases", {})
        tools = await session.call_tool("list_tools", {})
        demo = await session.call_tool(
            "run_script", {"case": DEMO_CASE, "script": DEMO_SCRIPT, "args": ["--format", "md"]}
        )
        slow = await session.call_tool(
            "run_script",
            {"case": DEMO_CASE, "script": "sleep.py", "args": ["2.5"]},
            progress_callback=on_progress,
        )
        return listed, cases, tools, demo, slow

    listed, cases, tools, demo, slow = drive(live, steps)
    assert {tool.name for tool in listed.tools} == MCP_TOOLS
    assert [c["name"] for c in cases.structured_content["cases"]] == [DEMO_CASE]
    described = {t["name"]: t["description"] for t in tools.structured_content["tools"]}
    assert described[DEMO_SCRIPT].startswith("Inventory of a folder")
    assert not demo.is_error, text_of(demo)
    assert demo.structured_content["status"] == "succeeded"
    assert "# Inventory of /data" in text_of(demo)
    assert slow.structured_content["status"] == "succeeded"
    assert len(progress) >= 2
    assert any("sleeping" in (message or "") for message in progress)
    # The same records as POST /runs: MCP runs are listed with the others.
    listed_runs = {r["id"] for r in live.request("GET", "/runs").json()["runs"]}
    assert {demo.structured_content["id"], slow.structured_content["id"]} <= listed_runs
    assert live.run_containers() == []


def test_start_get_cancel_and_the_shared_cap(live: LiveService) -> None:
    sleep = {"case": DEMO_CASE, "script": "sleep.py", "args": ["120"]}

    async def steps(session: ClientSession) -> Any:
        first = await session.call_tool("start_run", sleep)
        run_id = first.structured_content["run_id"]
        seen: dict[str, Any] = {}

        async def printed() -> bool:
            seen["get"] = await session.call_tool("get_run", {"run_id": run_id})
            return "sleeping" in text_of(seen["get"])

        await until(printed)
        # concurrency 1, queue 1: one runs, one waits, and then there is no room, for MCP
        # and REST alike.
        second = await session.call_tool("start_run", sleep)
        refused = await session.call_tool("start_run", {"case": DEMO_CASE, "script": DEMO_SCRIPT})
        rest = await anyio.to_thread.run_sync(
            lambda: live.post_run({"case": DEMO_CASE, "script": DEMO_SCRIPT})
        )
        queued = await session.call_tool(
            "cancel_run", {"run_id": second.structured_content["run_id"]}
        )
        cancelled = await session.call_tool("cancel_run", {"run_id": run_id})
        again = await session.call_tool("cancel_run", {"run_id": run_id})
        return first, seen["get"], second, refused, rest, queued, cancelled, again

    first, running, second, refused, rest, queued, cancelled, again = drive(live, steps)
    assert not first.is_error, text_of(first)
    assert running.structured_content["status"] == "running"
    assert second.structured_content["status"] == "queued"
    assert refused.is_error
    assert "1 runs in flight and 1 waiting" in text_of(refused)
    assert rest.status == 429
    assert (queued.structured_content["status"], queued.structured_content["exit_code"]) == (
        "cancelled",
        130,
    )
    assert cancelled.structured_content["status"] == "cancelled"
    assert cancelled.structured_content["exit_code"] == 130
    assert again.is_error
    assert "over already" in text_of(again)
    run_id = first.structured_content["run_id"]
    assert live.request("GET", f"/runs/{run_id}").json()["status"] == "cancelled"
    assert live.run_containers() == []


def test_refused_inputs_are_error_results(live: LiveService) -> None:
    async def steps(session: ClientSession) -> Any:
        asks = {
            "no such case": {"case": "nope", "script": DEMO_SCRIPT},
            "traversal": {"case": "../projects", "script": DEMO_SCRIPT},
            "no such script": {"case": DEMO_CASE, "script": "missing.py"},
            "timeout": {"case": DEMO_CASE, "script": "sleep.py", "args": ["30"], "timeout": 1},
        }
        answers = {why: await session.call_tool("run_script", ask) for why, ask in asks.items()}
        answers["no such run"] = await session.call_tool(
            "get_run", {"run_id": "20990101-000000-00000000"}
        )
        answers["not a run id"] = await session.call_tool("get_run", {"run_id": "../etc"})
        return answers

    answers = drive(live, steps)
    assert all(result.is_error for result in answers.values())
    said = {why: text_of(result) for why, result in answers.items()}
    assert said["no such case"].startswith("Error: case 'nope' does not exist\nhint: cases are")
    assert "'..'" in said["traversal"]
    assert "script 'missing.py' does not exist" in said["no such script"]
    assert answers["timeout"].structured_content["status"] == "timed_out"
    assert said["no such run"].startswith("Error: no run 20990101-000000-00000000\nhint: ")
    assert said["not a run id"].startswith("Error: '../etc' is not a run id\nhint: run ids")


def test_the_agent_example_over_http(live: LiveService) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", f"{live.url}/mcp"],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 2,
        env={**os.environ, "ROSCOE_TOKEN": live.token},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr + live.logs()
    assert "MCP tools: list_cases, list_tools, run_script" in result.stdout
    assert ": succeeded, exit code 0" in result.stdout
