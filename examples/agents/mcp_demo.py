"""An agent's first steps with roscoe over MCP, using the official `mcp` client library.

It connects, lists roscoe's MCP tools, asks which cases and scripts there are, and runs the
demo: create_file_inventory.py against demo-case, printing progress while it runs.

    pipx install 'roscoe[mcp]'        # or: pip install 'roscoe[mcp]'

    # stdio: this script starts `roscoe mcp` itself (no runner needed)
    python examples/agents/mcp_demo.py --workspace examples/workspace

    # streamable HTTP: the runner's /mcp endpoint (`roscoe server start` first); the token is
    # ROSCOE_TOKEN, else the file roscoe keeps it in (`roscoe server status` shows where)
    python examples/agents/mcp_demo.py --url http://127.0.0.1:8765/mcp

Exits 0 when the demo run succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

CASE = "demo-case"
SCRIPT = "create_file_inventory.py"


def roscoe_token() -> str:
    """ROSCOE_TOKEN, else the token file `roscoe server start` wrote."""
    token = os.environ.get("ROSCOE_TOKEN", "").strip()
    if token:
        return token
    from roscoe.config import paths

    return Path(paths.token_file()).read_text().strip()


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[ClientSession]:
    if args.url:
        headers = {"Authorization": f"Bearer {roscoe_token()}"}
        timeout = httpx2.Timeout(30, read=600)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
            streamable_http_client(args.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
        return
    command = [sys.executable, "-m", "roscoe", "mcp"]
    if args.workspace:
        command += ["--workspace", args.workspace]
    if args.image:
        command += ["--image", args.image]
    # The client passes only a minimal environment on; roscoe needs to find its settings.
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def demo(args: argparse.Namespace) -> int:
    async with connect(args) as session:
        tools = await session.list_tools()
        print("MCP tools:", ", ".join(tool.name for tool in tools.tools))

        cases = await session.call_tool("list_cases", {})
        print(cases.content[0].text)
        scripts = await session.call_tool("list_tools", {})
        print(scripts.content[0].text)

        async def progress(value: float, total: float | None, message: str | None) -> None:
            print(f"  ... {message}")

        result = await session.call_tool(
            "run_script",
            {"case": CASE, "script": SCRIPT, "args": ["--format", "md"]},
            progress_callback=progress,
        )
        print(result.content[0].text)
        record = result.structured_content or {}
        status, code = record.get("status"), record.get("exit_code")
        print(f"run {record.get('id')}: {status}, exit code {code}")
        return 1 if result.is_error else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the runner's MCP endpoint, e.g. http://127.0.0.1:8765/mcp")
    parser.add_argument("--workspace", help="stdio: the workspace `roscoe mcp` serves")
    parser.add_argument("--image", help="stdio: the image runs use")
    args = parser.parse_args()
    return anyio.run(demo, args)


if __name__ == "__main__":
    sys.exit(main())
