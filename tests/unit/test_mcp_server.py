"""The MCP tools through the official client, in process, over a fake backend (no engine).

What is checked here is the protocol surface: the tools and their schemas, text and
structured content, refusals as isError results (never protocol errors), progress while
run_script waits, and a cancelled call cancelling its run. Real runs on real engines are in
tests/integration/test_mcp.py.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client

from roscoe.errors import UsageError
from roscoe.mcp.backend import CANCELLED_ON_REQUEST, Principal, RunAsk, RunView
from roscoe.mcp.server import WAIT_ABANDONED, build_server

LOCAL_USER = Principal("local", admin=True, can_apply=True)  # as `roscoe mcp`'s caller
TOOLS = {"list_cases", "list_tools", "run_script", "start_run", "get_run", "cancel_run"}


class FakeBackend:
    """Runs that end when the test says so (or at once, for `instant`)."""

    def __init__(self, instant: bool = True):
        self.instant = instant
        self.runs: dict[str, dict[str, Any]] = {}
        self.release = threading.Event()
        self.asked: list[tuple[RunAsk, Principal]] = []
        self.cancelled: list[str] = []
        self.why: list[str] = []  # what each cancel said

    def max_timeout(self) -> float:
        return 3600

    def list_cases(self, who: Principal) -> list[dict[str, Any]]:
        return [{"name": "demo-case", "modified_at": "2026-11-21T10:00:00Z"}]

    def list_tools(self, who: Principal) -> list[dict[str, Any]]:
        return [{"name": "count.py", "kind": "python", "description": "Count words."}]

    def start(self, ask: RunAsk, who: Principal) -> RunView:
        if ask.case != "demo-case":
            raise UsageError(
                f"case '{ask.case}' does not exist", hint="cases are the folders in /w/projects"
            )
        self.asked.append((ask, who))
        run_id = f"run-{len(self.runs) + 1}"
        record = {"id": run_id, "case": ask.case, "script": ask.script, "args": list(ask.args)}
        record.update(status="running", exit_code=None)
        self.runs[run_id] = record
        if self.instant:
            self._end(run_id, "succeeded" if ask.script == "count.py" else "timed_out")
        return RunView(dict(record))

    def _end(self, run_id: str, status: str) -> None:
        codes = {"succeeded": 0, "timed_out": 124, "cancelled": 130}
        self.runs[run_id].update(status=status, exit_code=codes[status], duration_s=0.5)

    def wait(self, run_id: str, seconds: float) -> RunView:
        if self.release.wait(seconds) and self.runs[run_id]["status"] == "running":
            self._end(run_id, "succeeded")
        return RunView(dict(self.runs[run_id]), last_line="counting...")

    def view(self, run_id: str, who: Principal, tail_bytes: int) -> RunView:
        if run_id not in self.runs:
            raise UsageError(f"no run with id '{run_id}'", hint="`roscoe runs list`")
        return RunView(dict(self.runs[run_id]), output="words: 42\n")

    def cancel(self, run_id: str, who: Principal, why: str = CANCELLED_ON_REQUEST) -> RunView:
        self.why.append(why)
        record = self.view(run_id, who, 0).record
        if record["status"] != "running":
            raise UsageError(f"run {run_id} is already over ({record['status']})")
        self.cancelled.append(run_id)
        self._end(run_id, "cancelled")
        return RunView(dict(self.runs[run_id]))


def call(backend: FakeBackend, steps: Any) -> Any:
    server = build_server(backend, lambda ctx: LOCAL_USER)

    async def main() -> Any:
        async with Client(server) as client:
            return await steps(client)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


def test_the_tools_are_listed_with_descriptions_and_schemas() -> None:
    async def steps(client: Client) -> Any:
        return (await client.list_tools()).tools

    listed = {tool.name: tool for tool in call(FakeBackend(), steps)}
    assert set(listed) == TOOLS
    run = listed["run_script"]
    assert "working directory" in (run.description or "")
    schema = run.input_schema
    assert set(schema["required"]) == {"case", "script"}
    assert schema["properties"]["args"]["type"] == "array"
    assert "list_cases" in schema["properties"]["case"]["description"]
    assert listed["list_cases"].annotations.read_only_hint is True


def test_discovery_answers_as_text_and_structured_content() -> None:
    async def steps(client: Client) -> Any:
        return await client.call_tool("list_cases", {}), await client.call_tool("list_tools", {})

    cases, tools = call(FakeBackend(), steps)
    assert not cases.is_error
    assert cases.structured_content == {
        "cases": [{"name": "demo-case", "modified_at": "2026-11-21T10:00:00Z"}]
    }
    assert "demo-case" in text_of(cases)
    assert "count.py (python): Count words." in text_of(tools)


def test_run_script_returns_the_outcome_and_the_record() -> None:
    backend = FakeBackend()

    async def steps(client: Client) -> Any:
        return await client.call_tool(
            "run_script", {"case": "demo-case", "script": "count.py", "args": ["--top", "5"]}
        )

    result = call(backend, steps)
    assert not result.is_error
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["id"] == "run-1"
    assert text_of(result).startswith("Success: 'count.py' on case 'demo-case'")
    assert "words: 42" in text_of(result)
    assert backend.asked[0][0].args == ("--top", "5")


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"case": "nope", "script": "count.py"}, "case 'nope' does not exist"),
        ({"case": "demo-case", "script": "count.py", "timeout": 0}, "'timeout' must be"),
        ({"case": "demo-case", "script": "count.py", "timeout": 99999}, "at most 3600"),
        ({"case": "", "script": "count.py"}, "'case' must be a non-empty name"),
        ({"case": "demo-case", "script": "count.py", "args": [5]}, "args"),
        ({"case": "demo-case"}, "script"),
    ],
)
def test_a_callers_mistake_is_an_error_result_not_a_protocol_error(
    arguments: dict[str, Any], said: str
) -> None:
    async def steps(client: Client) -> Any:
        return await client.call_tool("run_script", arguments)

    result = call(FakeBackend(), steps)
    assert result.is_error
    assert said in text_of(result)


def test_a_refusal_carries_the_clis_hint() -> None:
    async def steps(client: Client) -> Any:
        return await client.call_tool("start_run", {"case": "nope", "script": "count.py"})

    result = call(FakeBackend(), steps)
    assert result.is_error
    assert text_of(result) == (
        "Error: case 'nope' does not exist\nhint: cases are the folders in /w/projects"
    )


def test_a_run_that_times_out_is_an_error_result_with_its_record() -> None:
    async def steps(client: Client) -> Any:
        return await client.call_tool("run_script", {"case": "demo-case", "script": "slow.py"})

    result = call(FakeBackend(), steps)
    assert result.is_error
    assert result.structured_content["status"] == "timed_out"
    assert text_of(result).startswith("Timeout:")


def test_run_script_reports_progress_while_it_waits() -> None:
    backend = FakeBackend(instant=False)
    seen: list[tuple[float, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, message))
        if len(seen) >= 2:
            backend.release.set()

    async def steps(client: Client) -> Any:
        return await client.call_tool(
            "run_script", {"case": "demo-case", "script": "count.py"}, progress_callback=progress
        )

    result = call(backend, steps)
    assert result.structured_content["status"] == "succeeded"
    assert len(seen) >= 2
    values = [value for value, _ in seen]
    assert values == sorted(set(values))  # strictly growing
    assert "run run-1" in (seen[0][1] or "")
    assert "counting..." in (seen[-1][1] or "")


def test_start_get_and_cancel() -> None:
    backend = FakeBackend(instant=False)

    async def steps(client: Client) -> Any:
        started = await client.call_tool("start_run", {"case": "demo-case", "script": "count.py"})
        run_id = started.structured_content["run_id"]
        running = await client.call_tool("get_run", {"run_id": run_id})
        cancelled = await client.call_tool("cancel_run", {"run_id": run_id})
        again = await client.call_tool("cancel_run", {"run_id": run_id})
        unknown = await client.call_tool("get_run", {"run_id": "run-99"})
        return started, running, cancelled, again, unknown

    started, running, cancelled, again, unknown = call(backend, steps)
    assert not started.is_error
    assert "get_run" in text_of(started)
    assert running.structured_content["status"] == "running"
    assert text_of(running).startswith("Running:")
    assert cancelled.structured_content["status"] == "cancelled"
    assert cancelled.structured_content["exit_code"] == 130
    assert backend.why[0] == CANCELLED_ON_REQUEST
    assert again.is_error
    assert "already over" in text_of(again)
    assert unknown.is_error
    assert "no run with id 'run-99'" in text_of(unknown)


def test_a_cancelled_call_cancels_its_run() -> None:
    backend = FakeBackend(instant=False)
    server = build_server(backend, lambda ctx: LOCAL_USER)

    async def main() -> None:
        async with Client(server) as client:
            with anyio.move_on_after(0.5):
                await client.call_tool("run_script", {"case": "demo-case", "script": "count.py"})

    anyio.run(main)
    assert backend.cancelled == ["run-1"]
    assert backend.why == [WAIT_ABANDONED]  # the record says why it was stopped
