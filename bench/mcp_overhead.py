"""Bench MCP `run_script` over streamable HTTP against `POST /runs`, on the same runner.

    .venv/bin/python bench/mcp_overhead.py [--engines docker,podman] [--repeat 40]
        [--image roscoe-runner:dev]

Starts a runner under a throwaway data dir, name and port, with a copy of
examples/workspace; then, alternating, runs the demo (create_file_inventory.py on demo-case)
through `POST /runs` (waiting) and through one MCP client session's `run_script` (the
official client, streamable HTTP, the service's token). Both carry the same run through the
same scheduler, in pairs of alternating order. What MCP adds is the difference of the two
medians, and the median of the pairs' differences (robust to one slow engine call); the
target holds when both are at most 30 ms. Runs vary by tens of milliseconds on a busy
machine, so it also measures what the protocol costs per call with no engine in the way
(MCP list_cases against GET /cases, same answer).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

HOSTS = {"docker": "unix:///var/run/docker.sock", "podman": "unix:///run/podman/podman.sock"}
ROSCOE = [sys.executable, "-m", "roscoe"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "workspace"
RUN = {"case": "demo-case", "script": "create_file_inventory.py", "args": ["--format", "md"]}
TARGET_MS = 30.0
CALLS = 50  # list_cases through MCP and GET /cases, each


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, token: str, path: str) -> float:
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise SystemExit(f"GET {path} failed: {answer.status}")
    return time.perf_counter() - began


def post_run(port: int, token: str) -> float:
    body = json.dumps(RUN).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/runs", body=body, headers=headers)
        answer = conn.getresponse()
        record = json.loads(answer.read())
    finally:
        conn.close()
    took = time.perf_counter() - began
    if answer.status != 200 or record.get("status") != "succeeded":
        raise SystemExit(f"POST /runs failed: {answer.status} {record}")
    return took


async def bench_runner(port: int, token: str, repeat: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    posts: list[float] = []
    mcps: list[float] = []
    calls_mcp: list[float] = []
    calls_rest: list[float] = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()

        async def mcp_run() -> float:
            began = time.perf_counter()
            result = await session.call_tool("run_script", RUN)
            took = time.perf_counter() - began
            if result.is_error:
                raise SystemExit(f"MCP run_script failed: {result.content}")
            return took

        # What the protocol itself costs per call, with no engine in the way: the same
        # answer through MCP and through REST.
        for _ in range(CALLS):
            began = time.perf_counter()
            await session.call_tool("list_cases", {})
            calls_mcp.append(time.perf_counter() - began)
            calls_rest.append(await anyio.to_thread.run_sync(get, port, token, "/cases"))
        for _ in range(2):  # warm up both paths (imports, page cache, the engine)
            await anyio.to_thread.run_sync(post_run, port, token)
            await mcp_run()
        for index in range(repeat):
            # Pairs, in alternating order: whatever the engine is doing at the moment weighs
            # on both halves of a pair alike.
            if index % 2:
                mcps.append(await mcp_run())
                posts.append(await anyio.to_thread.run_sync(post_run, port, token))
            else:
                posts.append(await anyio.to_thread.run_sync(post_run, port, token))
                mcps.append(await mcp_run())
    return {"posts": posts, "mcps": mcps, "calls_mcp": calls_mcp, "calls_rest": calls_rest}


def bench_engine(engine: str, repeat: int, image: str) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="roscoe-bench-mcp-"))
    port = free_port()
    env = {
        **os.environ,
        "DOCKER_HOST": HOSTS[engine],
        "ROSCOE_RUNTIME": engine,
        "ROSCOE_DATA_DIR": str(scratch / "data"),
        "ROSCOE_CONFIG_DIR": str(scratch / "config"),
        "ROSCOE_CONTAINER_NAME": f"roscoe-bench-mcp-{os.getpid()}",
        "ROSCOE_PORT": str(port),
    }
    workspace = scratch / "workspace"
    shutil.copytree(EXAMPLES, workspace)
    for folder, _dirs, files in os.walk(workspace):
        os.chmod(folder, 0o777)
        for name in files:
            os.chmod(Path(folder) / name, 0o666)
    try:
        subprocess.run(
            [*ROSCOE, "server", "start", "--image", image, "--workspace", str(workspace)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        token = (scratch / "data" / "service-token").read_text().strip()
        found = anyio.run(bench_runner, port, token, repeat)
    finally:
        subprocess.run([*ROSCOE, "server", "stop"], env=env, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    posts, mcps = found["posts"], found["mcps"]
    post_ms = statistics.median(posts) * 1000
    mcp_ms = statistics.median(mcps) * 1000
    call_ms = statistics.median(found["calls_mcp"]) * 1000
    rest_ms = statistics.median(found["calls_rest"]) * 1000
    # The median of the pairs' differences: robust to a slow engine call in either half.
    added_ms = statistics.median(m - p for m, p in zip(mcps, posts, strict=True)) * 1000
    return {
        "engine": engine,
        "runs": repeat,
        "post_runs_ms": round(post_ms, 1),
        "mcp_run_script_ms": round(mcp_ms, 1),
        "difference_ms": round(mcp_ms - post_ms, 1),
        "paired_difference_ms": round(added_ms, 1),
        "ratio": round(mcp_ms / post_ms, 3),
        "mcp_call_ms": round(call_ms, 1),
        "rest_call_ms": round(rest_ms, 1),
        "target_ms": TARGET_MS,
        "ok": max(mcp_ms - post_ms, added_ms) <= TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="docker,podman")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--image", default="roscoe-runner:dev")
    args = parser.parse_args()
    results = [
        bench_engine(engine.strip(), args.repeat, args.image)
        for engine in args.engines.split(",")
        if engine.strip()
    ]
    for result in results:
        print(
            f"{result['engine']}: POST /runs {result['post_runs_ms']} ms, MCP run_script "
            f"{result['mcp_run_script_ms']} ms (medians of {result['runs']}): MCP adds "
            f"{result['difference_ms']} ms ({result['paired_difference_ms']} ms as the median "
            f"of the pairs), ratio {result['ratio']} "
            f"({'ok' if result['ok'] else 'over'} the {TARGET_MS:g} ms target); per call, "
            f"MCP list_cases {result['mcp_call_ms']} ms vs GET /cases {result['rest_call_ms']} ms"
        )
    print(json.dumps(results))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
