"""Scoped tokens against the real service in the runner image, on Docker and on Podman.

A token for case A (demo-case) tries everything on case B through every endpoint; tokens are
made and revoked with the real CLI while the service runs, and take effect without a restart.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import DEMO_CASE, Answer, LiveService, start_service

from helpers import roscoe
from roscoe.config import paths

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.engine, pytest.mark.image]

OTHER = "other-case"
SECRET = "s3cr3t-env-value-for-the-grep"
NOTE = "from pathlib import Path\nPath('note.txt').write_text('noted\\n')\n"
SLOW = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
# Every endpoint that takes a run id.
RUN_ENDPOINTS = [
    ("GET", "/runs/{id}"),
    ("GET", "/runs/{id}/output"),
    ("GET", "/runs/{id}/output?follow=true"),
    ("GET", "/runs/{id}/events"),
    ("DELETE", "/runs/{id}"),
]


def make_token(*args: str) -> str:
    made = roscoe("token", "create", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.decode().strip()


def prepare(live: LiveService) -> None:
    other = live.workspace / "projects" / OTHER
    other.mkdir()
    other.chmod(0o777)
    (other / "private.txt").write_text("case B only\n")
    for name, text in (("note.py", NOTE), ("slow.py", SLOW)):
        (live.workspace / "Tools" / name).write_text(text)


def post(live: LiveService, token: str, case: str, script: str, **extra: Any) -> Answer:
    return live.post_run({"case": case, "script": script, **extra}, token=token)


def wait_until(check: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def test_a_token_for_case_a_reaches_nothing_of_case_b(start_service: Any) -> None:
    live: LiveService = start_service()
    prepare(live)
    token = make_token("para", "--case", DEMO_CASE, "--tool", "n*.py", "--tool", "slow.py")

    # Discovery: its case only, its tools only.
    cases = live.request("GET", "/cases", token=token).json()["cases"]
    assert [c["name"] for c in cases] == [DEMO_CASE]
    tools = live.request("GET", "/tools", token=token).json()["tools"]
    assert sorted(t["name"] for t in tools) == ["note.py", "slow.py"]
    assert {c["name"] for c in live.request("GET", "/cases").json()["cases"]} >= {
        DEMO_CASE,
        OTHER,
    }

    # Runs: its case with its tools; anything else is 403 naming the rule.
    mine = post(live, token, DEMO_CASE, "note.py")
    assert mine.status == 200, mine.body
    assert mine.json()["requested_by"] == "para"
    refused = post(live, token, OTHER, "note.py")
    assert refused.status == 403
    assert refused.json()["error"] == (
        f"token 'para' may not use case '{OTHER}' (its cases: {DEMO_CASE})"
    )
    refused = post(live, token, DEMO_CASE, "create_file_inventory.py")
    assert refused.status == 403
    assert (
        "may not run 'create_file_inventory.py' (its tools: n*.py, slow.py)"
        in refused.body.decode()
    )
    assert not (live.workspace / "projects" / OTHER / "note.txt").exists()

    # The admin's runs of case B: a finished one and a running one.
    done_b = live.post_run({"case": OTHER, "script": "note.py"}).json()["id"]
    running_b = live.post_run({"case": OTHER, "script": "slow.py", "wait": False}).json()["id"]
    assert wait_until(
        lambda: live.request("GET", f"/runs/{running_b}").json()["status"] == "running", 60
    )
    for run_id in (done_b, running_b):
        for method, path in RUN_ENDPOINTS:
            answer = live.request(method, path.format(id=run_id), token=token, timeout=30)
            assert answer.status == 404, (method, path, answer.body)
            assert answer.json() == {"error": f"no run {run_id}"}
    listed = live.request("GET", "/runs?limit=50", token=token).json()["runs"]
    assert [r["id"] for r in listed] == [mine.json()["id"]]
    assert live.request("GET", f"/runs?case={OTHER}", token=token).json() == {"runs": []}
    assert live.request("GET", "/metrics", token=token).status == 403
    assert live.request("GET", f"/runs/{running_b}").json()["status"] == "running"  # untouched

    # The admin token sees and does everything.
    everything = {r["id"] for r in live.request("GET", "/runs?limit=50").json()["runs"]}
    assert {mine.json()["id"], done_b} <= everything
    assert live.request("DELETE", f"/runs/{running_b}", timeout=60).status in (200, 202)
    # Its own run, through every endpoint that takes an id (but cancel: it is over).
    for method, path in RUN_ENDPOINTS[:-1]:
        answer = live.request(method, path.format(id=mine.json()["id"]), token=token)
        assert answer.status == 200, (method, path, answer.body)


def test_revoke_and_new_tokens_count_without_a_restart(start_service: Any) -> None:
    live: LiveService = start_service()
    prepare(live)
    token = make_token("temp", "--case", DEMO_CASE)
    assert live.request("GET", "/cases", token=token).status == 200
    started = live.health()
    revoked = roscoe("token", "revoke", "temp")
    assert revoked.returncode == 0, revoked.stderr
    assert wait_until(lambda: live.request("GET", "/cases", token=token).status == 401, 1.0)
    answer = live.request("GET", "/runs", token=token)
    assert answer.json()["error"].startswith("token 'temp' was revoked at")
    fresh = make_token("fresh", "--case", OTHER)
    assert wait_until(lambda: live.request("GET", "/cases", token=fresh).status == 200, 1.0)
    assert [c["name"] for c in live.request("GET", "/cases", token=fresh).json()["cases"]] == [
        OTHER
    ]
    assert live.health()["version"] == started["version"]  # the same service throughout
    assert live.engine.inspect_container(live.container_id)["RestartCount"] == 0


def test_an_expired_token_is_refused(start_service: Any) -> None:
    live: LiveService = start_service()
    token = make_token("brief", "--expires", "1h")
    assert live.request("GET", "/cases", token=token).status == 200
    where = paths.tokens_file()
    data = json.loads(where.read_text())
    data["tokens"][0]["expires"] = "2020-01-01T00:00:00Z"  # an hour is long: pretend it passed
    where.write_text(json.dumps(data))
    answer = live.request("GET", "/cases", token=token)
    assert answer.status == 401
    assert answer.json() == {"error": "token 'brief' expired at 2020-01-01T00:00:00Z"}
    listed = json.loads(roscoe("token", "list", "--json").stdout)
    assert listed[0]["state"] == "expired"


def test_no_token_or_env_value_is_written_anywhere(start_service: Any, tmp_path: Path) -> None:
    live: LiveService = start_service()
    prepare(live)
    token = make_token("para", "--case", DEMO_CASE)
    answer = post(live, token, DEMO_CASE, "note.py", env={"API_KEY": SECRET, "PLAIN": SECRET})
    assert answer.status == 200, answer.body
    assert answer.json()["env_names"] == ["API_KEY", "PLAIN"]
    post(live, token, OTHER, "note.py")  # refused, and logged
    live.request("GET", "/runs", token=token + "x")  # a wrong one, logged as a 401
    secrets = [token, live.token, SECRET]
    log = live.logs()
    assert '"caller": "para"' in log
    for secret in secrets:
        assert secret not in log
    data_dir = paths.data_dir()
    for folder, _dirs, files in os.walk(data_dir):
        for name in files:
            path = Path(folder) / name
            if path == paths.token_file():
                continue  # the admin token's own file
            content = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in content, path


def test_mcp_over_http_gets_the_same_rules(start_service: Any) -> None:
    pytest.importorskip("mcp")
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    live: LiveService = start_service()
    prepare(live)
    token = make_token("agent", "--case", OTHER, "--tool", "note.py")
    theirs = live.post_run({"case": DEMO_CASE, "script": "note.py"}).json()["id"]

    async def steps() -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
            streamable_http_client(f"{live.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return (
                await session.call_tool("list_cases", {}),
                await session.call_tool("list_tools", {}),
                await session.call_tool("run_script", {"case": DEMO_CASE, "script": "note.py"}),
                await session.call_tool("run_script", {"case": OTHER, "script": "note.py"}),
                await session.call_tool("get_run", {"run_id": theirs}),
                await session.call_tool("cancel_run", {"run_id": theirs}),
            )

    async def bounded() -> Any:
        with anyio.fail_after(120):
            return await steps()

    cases, tools, refused, ran, seen, cancelled = anyio.run(bounded)
    text = lambda result: "\n".join(block.text for block in result.content)  # noqa: E731
    assert [c["name"] for c in cases.structured_content["cases"]] == [OTHER]
    assert [t["name"] for t in tools.structured_content["tools"]] == ["note.py"]
    assert refused.is_error
    assert f"token 'agent' may not use case '{DEMO_CASE}' (its cases: {OTHER})" in text(refused)
    assert not ran.is_error, text(ran)
    assert ran.structured_content["requested_by"] == "agent"
    assert seen.is_error and f"no run {theirs}" in text(seen)
    assert cancelled.is_error and f"no run {theirs}" in text(cancelled)
    assert token not in live.logs()
