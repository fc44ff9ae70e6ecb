"""The MCP server: the tools of `roscoe.mcp.tools` registered with the MCP SDK.

Imported only where the SDK is installed (`roscoe[mcp]`, and the runner image). Backend
calls block, so each runs in a worker thread; the event loop only waits and sends progress.
"""

import contextlib
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from roscoe import __version__
from roscoe.errors import RoscoeError
from roscoe.mcp import tools
from roscoe.mcp.backend import Backend, Principal, RunView

PrincipalOf = Callable[[Context], Principal]

INSTRUCTIONS = (
    "roscoe runs scripts against exactly one case folder, in a scoped, short-lived container. "
    "Find the cases with list_cases and the scripts with list_tools (each described by its "
    "author), then run one with run_script (waits) or start_run (returns a run id; follow it "
    "with get_run, stop it with cancel_run). A script's working directory is its case folder."
)

Case = Annotated[str, Field(description=tools.CASE_HELP)]
Script = Annotated[str, Field(description=tools.SCRIPT_HELP)]
Args = Annotated[list[str], Field(description=tools.ARGS_HELP)]
Timeout = Annotated[float | None, Field(description=tools.TIMEOUT_HELP)]
Preview = Annotated[bool, Field(description=tools.PREVIEW_HELP)]
RunId = Annotated[str, Field(description=tools.RUN_ID_HELP)]

# What a run's record says when run_script's caller stopped waiting (it cancelled the call, or
# went away): the run is stopped with it.
WAIT_ABANDONED = "cancelled: the caller stopped waiting for run_script"
_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_RUNS = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)


def to_result(result: tools.ToolResult) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=result.text)],
        structured_content=result.structured,
        is_error=result.is_error,
    )


def build_server(backend: Backend, principal_of: PrincipalOf) -> MCPServer:
    """An MCPServer whose tools run on `backend`, for the caller `principal_of(ctx)` names."""
    server: MCPServer = MCPServer(
        name="roscoe",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )

    async def call(fn: Callable[..., tools.ToolResult], *args: Any) -> CallToolResult:
        return to_result(await anyio.to_thread.run_sync(fn, *args))

    @server.tool(description=tools.DESCRIPTIONS["list_cases"], annotations=_READ_ONLY)
    async def list_cases(ctx: Context) -> CallToolResult:
        return await call(_guarded(tools.list_cases), backend, principal_of(ctx))

    @server.tool(description=tools.DESCRIPTIONS["list_tools"], annotations=_READ_ONLY)
    async def list_tools(ctx: Context) -> CallToolResult:
        return await call(_guarded(tools.list_tools), backend, principal_of(ctx))

    @server.tool(description=tools.DESCRIPTIONS["run_script"], annotations=_RUNS)
    async def run_script(
        case: Case,
        script: Script,
        ctx: Context,
        *,
        args: Args = [],  # noqa: B006 - copied by the SDK's validation on every call
        timeout: Timeout = None,
        preview: Preview = False,
    ) -> CallToolResult:
        ask = tools.make_ask(backend, case, script, args, timeout, preview=preview)
        if isinstance(ask, tools.ToolResult):
            return to_result(ask)
        return to_result(await _run_and_wait(backend, principal_of(ctx), ask, ctx))

    @server.tool(description=tools.DESCRIPTIONS["start_run"], annotations=_RUNS)
    async def start_run(
        case: Case,
        script: Script,
        ctx: Context,
        *,
        args: Args = [],  # noqa: B006 - copied by the SDK's validation on every call
        timeout: Timeout = None,
        preview: Preview = False,
    ) -> CallToolResult:
        ask = tools.make_ask(backend, case, script, args, timeout, preview=preview)
        if isinstance(ask, tools.ToolResult):
            return to_result(ask)
        return await call(tools.start_run, backend, principal_of(ctx), ask)

    @server.tool(description=tools.DESCRIPTIONS["get_run"], annotations=_READ_ONLY)
    async def get_run(run_id: RunId, ctx: Context) -> CallToolResult:
        return await call(tools.get_run, backend, principal_of(ctx), run_id)

    @server.tool(description=tools.DESCRIPTIONS["cancel_run"], annotations=_RUNS)
    async def cancel_run(run_id: RunId, ctx: Context) -> CallToolResult:
        return await call(tools.cancel_run, backend, principal_of(ctx), run_id)

    return server


async def _run_and_wait(
    backend: Backend, who: Principal, ask: Any, ctx: Context
) -> tools.ToolResult:
    """run_script: start the run, report progress while it goes, answer when it is over.

    If the call is cancelled (the client cancels the request, or goes away), the run is
    cancelled too: a caller that wants a run to outlive the call uses start_run.
    """
    try:
        view: RunView = await anyio.to_thread.run_sync(backend.start, ask, who)
    except RoscoeError as exc:
        return tools.refusal(exc)
    started = time.monotonic()
    sent = -1.0
    try:
        while not view.finished:
            elapsed = round(time.monotonic() - started, 1)
            if elapsed <= sent:  # progress must grow with every notification
                elapsed = round(sent + 0.1, 1)
            await ctx.report_progress(elapsed, None, tools.progress_message(view, elapsed))
            sent = elapsed
            view = await anyio.to_thread.run_sync(backend.wait, view.run_id, tools.PROGRESS_EVERY_S)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_cancel_quietly, backend, view.run_id, who)
        raise
    try:
        final = await anyio.to_thread.run_sync(
            backend.view, view.run_id, who, tools.OUTPUT_TAIL_BYTES
        )
    except RoscoeError as exc:
        return tools.refusal(exc)
    return tools.finished_result(final)


def _cancel_quietly(backend: Backend, run_id: str, who: Principal) -> None:
    with contextlib.suppress(RoscoeError):  # already over: nothing to stop
        backend.cancel(run_id, who, WAIT_ABANDONED)


def _guarded(fn: Callable[[Backend, Principal], tools.ToolResult]) -> Callable[..., Any]:
    """A listing that fails (an unreadable workspace) answers as a refusal, not a crash."""

    def run(backend: Backend, who: Principal) -> tools.ToolResult:
        try:
            return fn(backend, who)
        except RoscoeError as exc:
            return tools.refusal(exc)

    return run
