"""`roscoe mcp` over stdio, driven by the official MCP client (ClientSession), on real engines.

Each test starts the real `roscoe mcp` as a subprocess, the way Claude Desktop or Claude Code
would, against a copy of the example workspace; runs use the small base image.
"""

from __future__ import annotations

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

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from service_fixtures import DEMO_CASE, DEMO_SCRIPT, make_workspace

from helpers import roscoe_containers
from roscoe.labels import LABEL_RUN_ID
from roscoe.runs.host import user_name
from roscoe.runs.records import load_run

pytestmark = pytest.mark.engine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents" / "mcp_demo.py"
MCP_TOOLS = {"list_cases", "list_tools", "run_script", "start_run", "get_run", "cancel_run"}
DEADLINE_S = 60.0


@asynccontextmanager
async def mcp_stdio(workspace: Path, image: str) -> AsyncIterator[ClientSession]:
    """A ClientSession on a fresh `roscoe mcp`, with this test's environment."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "roscoe", "mcp", "--workspace", str(workspace), "--image", image],
        env=dict(os.environ),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def drive(workspace: Path, image: str, steps: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        with anyio.fail_after(DEADLINE_S * 2):
            async with mcp_stdio(workspace, image) as session:
                return await steps(session)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    with anyio.fail_after(DEADLINE_S):
        while not await check():
            await anyio.sleep(0.2)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path)


def test_discovery(engine_env: dict[str, str], base_image: str, workspace: Path) -> None:
    async def steps(session: ClientSession) -> Any:
        listed = await session.list_tools()
        cases = await session.call_tool("list_cases", {})
        tools = await session.call_tool("list_tools", {})
        return listed, cases, tools

    listed, cases, tools = drive(workspace, base_image, steps)
    assert {tool.name for tool in listed.tools} == MCP_TOOLS
    assert [c["name"] for c in cases.structured_content["cases"]] == [DEMO_CASE]
    names = {t["name"]: t for t in tools.structured_content["tools"]}
    assert {DEMO_SCRIPT, "sleep.py", "fail.py"} <= set(names)
    assert names[DEMO_SCRIPT]["description"].startswith("Inventory of a folder")
    assert f"{DEMO_SCRIPT} (python): Inventory of a folder" in text_of(tools)


def test_run_script_waits_and_reports_progress(
    engine: Any, engine_name: str, base_image: str, workspace: Path
) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async def steps(session: ClientSession) -> Any:
        demo = await session.call_tool(
            "run_script", {"case": DEMO_CASE, "script": DEMO_SCRIPT, "args": ["--format", "md"]}
        )
        slow = await session.call_tool(
            "run_script",
            {"case": DEMO_CASE, "script": "sleep.py", "args": ["2.5"]},
            progress_callback=on_progress,
        )
        return demo, slow

    demo, slow = drive(workspace, base_image, steps)
    assert not demo.is_error, text_of(demo)
    record = demo.structured_content
    assert (record["status"], record["exit_code"], record["engine"]) == (
        "succeeded",
        0,
        engine_name,
    )
    assert "# Inventory of /data" in text_of(demo)
    saved = load_run(record["id"])
    assert saved.status == "succeeded"  # recorded like any roscoe run
    assert saved.requested_by == f"mcp:{user_name()}"
    assert saved.changes is not None and saved.changes["tracked"] is True
    assert slow.structured_content["status"] == "succeeded"
    assert "woke up" in text_of(slow)
    assert len(progress) >= 2
    assert [value for value, _ in progress] == sorted({value for value, _ in progress})
    assert any("sleeping" in (message or "") for _, message in progress)
    assert roscoe_containers(engine, **{LABEL_RUN_ID: record["id"]}) == []


def test_start_get_and_cancel_a_running_run(engine: Any, base_image: str, workspace: Path) -> None:
    async def steps(session: ClientSession) -> Any:
        started = await session.call_tool(
            "start_run", {"case": DEMO_CASE, "script": "sleep.py", "args": ["120"]}
        )
        run_id = started.structured_content["run_id"]
        seen: dict[str, Any] = {}

        async def printed() -> bool:
            seen["get"] = await session.call_tool("get_run", {"run_id": run_id})
            return "sleeping" in text_of(seen["get"])

        await until(printed, "the run's first line")
        cancelled = await session.call_tool("cancel_run", {"run_id": run_id})
        again = await session.call_tool("cancel_run", {"run_id": run_id})
        after = await session.call_tool("get_run", {"run_id": run_id})
        return started, seen["get"], cancelled, again, after

    started, running, cancelled, again, after = drive(workspace, base_image, steps)
    assert not started.is_error, text_of(started)
    run_id = started.structured_content["run_id"]
    assert running.structured_content["status"] == "running"
    assert text_of(running).startswith("Running:")
    assert (cancelled.structured_content["status"], cancelled.structured_content["exit_code"]) == (
        "cancelled",
        130,
    )
    assert again.is_error
    assert "is over already (cancelled)" in text_of(again)
    assert after.is_error  # a cancelled run did not succeed
    assert after.structured_content["status"] == "cancelled"
    assert load_run(run_id).status == "cancelled"
    assert roscoe_containers(engine, **{LABEL_RUN_ID: run_id}) == []


def test_refused_inputs_are_error_results(base_image: str, workspace: Path, engine: Any) -> None:
    async def steps(session: ClientSession) -> Any:
        asks = {
            "no such case": {"case": "nope", "script": DEMO_SCRIPT},
            "traversal": {"case": "../projects", "script": DEMO_SCRIPT},
            "script outside": {"case": DEMO_CASE, "script": "../projects/demo-case/notes"},
            "no such script": {"case": DEMO_CASE, "script": "missing.py"},
            "timeout": {"case": DEMO_CASE, "script": "sleep.py", "args": ["30"], "timeout": 1},
            "failure": {"case": DEMO_CASE, "script": "fail.py"},
        }
        answers = {why: await session.call_tool("run_script", ask) for why, ask in asks.items()}
        answers["no such run"] = await session.call_tool(
            "get_run", {"run_id": "20990101-000000-00000000"}
        )
        answers["bad run id"] = await session.call_tool("cancel_run", {"run_id": "../etc"})
        return answers

    answers = drive(workspace, base_image, steps)
    assert all(result.is_error for result in answers.values())
    said = {why: text_of(result) for why, result in answers.items()}
    assert said["no such case"].startswith("Error: case 'nope' does not exist\nhint: cases are")
    assert "'..'" in said["traversal"]
    assert "'..'" in said["script outside"]
    assert "script 'missing.py' does not exist" in said["no such script"]
    assert answers["timeout"].structured_content["status"] == "timed_out"
    assert answers["timeout"].structured_content["exit_code"] == 124
    assert said["timeout"].startswith("Timeout:")
    assert answers["failure"].structured_content["exit_code"] == 3
    assert "about to fail" in said["failure"]
    assert said["no such run"].startswith("Error: no run 20990101-000000-00000000\nhint: ")
    assert "is not a run id" in said["bad run id"]


def test_the_agent_example_runs_the_demo(base_image: str, workspace: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--workspace", str(workspace), "--image", base_image],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 2,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MCP tools: list_cases, list_tools, run_script" in result.stdout
    assert "# Inventory of /data" in result.stdout
    assert ": succeeded, exit code 0" in result.stdout


def test_a_client_that_goes_away_leaves_no_run_behind(
    engine: Any, base_image: str, workspace: Path
) -> None:
    async def steps(session: ClientSession) -> str:
        started = await session.call_tool(
            "start_run", {"case": DEMO_CASE, "script": "sleep.py", "args": ["120"]}
        )
        run_id = str(started.structured_content["run_id"])

        async def printed() -> bool:
            answer = await session.call_tool("get_run", {"run_id": run_id})
            return "sleeping" in text_of(answer)

        await until(printed, "the run's first line")
        return run_id  # leaving the session closes roscoe mcp's stdin

    run_id = drive(workspace, base_image, steps)
    assert load_run(run_id).status == "interrupted"
    assert roscoe_containers(engine, **{LABEL_RUN_ID: run_id}) == []
