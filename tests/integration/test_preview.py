"""Preview, then apply, on real Docker and Podman: from the CLI and through the service.

The case is compared byte for byte (and mode for mode) before and after; what apply lands is
compared with the copy the script worked on.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import DEMO_CASE, LiveService, start_service
from test_run_support import (
    CASE,
    leftovers,
    make_workspace,
    record_of,
    run_cli,
    run_ids,
    spawn_cli,
    wait_for_output,
)

from helpers import roscoe
from roscoe.runs.host import UNPRIVILEGED_UID

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.engine

EVERYTHING = r"""
import os, pathlib
p = pathlib.Path
p("input.txt").write_text("hello, changed\n")
os.remove("gone.txt")
os.rename("docs/note.md", "docs/renamed.md")
os.remove("docs/old/stale.txt"); os.rmdir("docs/old")
os.makedirs("out/deep")
p("out/deep/chart.bin").write_bytes(bytes(range(256)) * 64 + b"\x00\xff")
p("scan.bin").write_bytes(p("scan.bin").read_bytes()[::-1])
os.chmod("run.sh", 0o755)
os.symlink("input.txt", "latest")
print("changed the copy", flush=True)
"""
EDIT = "import pathlib\npathlib.Path('input.txt').write_text('preview edit\\n')\n"
SLOW = (
    "import pathlib, time\npathlib.Path('half.txt').write_text('half')\n"
    "print('started', flush=True)\ntime.sleep(120)\n"
)


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under root: (type and mode, sha256 or symlink target), links not followed."""
    found: dict[str, tuple[str, str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            info = path.lstat()
            mode = f"{stat.S_IFMT(info.st_mode):o}:{stat.S_IMODE(info.st_mode):o}"
            if path.is_symlink():
                found[str(path.relative_to(root))] = (mode, os.readlink(path))
            elif path.is_dir():
                found[str(path.relative_to(root))] = (mode, "")
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path.relative_to(root))] = (mode, digest)
    return found


def fill_case(case: Path) -> None:
    (case / "docs" / "old").mkdir(parents=True, exist_ok=True)
    (case / "gone.txt").write_text("to be deleted\n")
    (case / "docs" / "note.md").write_text("# note\n")
    (case / "docs" / "old" / "stale.txt").write_text("stale\n")
    (case / "scan.bin").write_bytes(bytes(range(256)) * 16)
    (case / "run.sh").write_text("echo hi\n")
    # The script runs as uid 1000 under a root roscoe: it must own what it chmods.
    owner = (UNPRIVILEGED_UID, UNPRIVILEGED_UID) if os.getuid() == 0 else None
    for folder, dirs, files in os.walk(case):
        for name in [*dirs, *files]:
            os.chmod(Path(folder) / name, 0o777 if name in dirs else 0o666)
            if owner:
                os.chown(Path(folder) / name, *owner)
    case.chmod(0o777)
    if owner:
        os.chown(case, *owner)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = make_workspace(
        tmp_path / "ws", {"everything.py": EVERYTHING, "edit.py": EDIT, "slow.py": SLOW}
    )
    fill_case(root / "projects" / CASE)
    return root


@pytest.fixture
def clean(engine: Any, isolated_dirs: Path) -> Iterator[None]:
    yield
    assert leftovers(engine, isolated_dirs) == []


def test_the_case_is_untouched_and_apply_lands_exactly_the_copy(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    case = ws / "projects" / CASE
    before = tree(case)
    done = run_cli(ws, base_image, "--preview", CASE, "everything.py")
    assert done.returncode == 0, done.stderr
    assert b"12 change(s) wait in run" in done.stderr
    assert tree(case) == before  # byte for byte, mode for mode
    (run_id,) = run_ids(isolated_dirs)
    record = record_of(isolated_dirs, run_id)
    assert (record["preview"], record["preview_state"]) == (True, "pending")
    copy = isolated_dirs / "runs" / run_id / "preview"
    expected = tree(copy)
    changed = record["changes"]
    assert {i["path"] for i in changed["created"]} == {
        "docs/renamed.md",
        "out",
        "out/deep",
        "out/deep/chart.bin",
        "latest",
    }
    assert {i["path"] for i in changed["deleted"]} == {
        "gone.txt",
        "docs/note.md",
        "docs/old",
        "docs/old/stale.txt",
    }
    assert {i["path"] for i in changed["modified"]} == {"input.txt", "scan.bin", "run.sh"}
    shown = roscoe("runs", "show", run_id, env={"COLUMNS": "300"}).stdout.decode()
    assert "pending: the case is untouched" in shown and "+ out/deep/chart.bin" in shown

    applied = roscoe("runs", "apply", run_id)
    assert applied.returncode == 0, applied.stderr
    assert f"applied 12 change(s) of run {run_id}" in applied.stdout.decode()
    assert tree(case) == expected  # exactly what the script left in the copy
    for item in [*changed["created"], *changed["modified"]]:
        if item["type"] == "file":
            data = (case / item["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == item["sha256"]
    record = record_of(isolated_dirs, run_id)
    assert record["preview_state"] == "applied"
    assert record["applied_by"].startswith("cli:") and record["applied_at"]
    assert not copy.exists()
    again = roscoe("runs", "apply", run_id)
    assert again.returncode == 2 and b"was applied at" in again.stderr


def test_a_conflicting_edit_is_refused_and_changes_nothing(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    case = ws / "projects" / CASE
    done = run_cli(ws, base_image, "--preview", CASE, "edit.py")
    assert done.returncode == 0, done.stderr
    (run_id,) = run_ids(isolated_dirs)
    (case / "input.txt").write_text("a person's edit\n")
    before = tree(case)
    refused = roscoe("runs", "apply", run_id)
    assert refused.returncode == 1
    assert b"input.txt (changed in the case since)" in refused.stderr
    assert b"nothing was applied" in refused.stderr
    assert tree(case) == before
    assert record_of(isolated_dirs, run_id)["preview_state"] == "pending"


def test_discard_leaves_no_trace(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    case = ws / "projects" / CASE
    before = tree(case)
    done = run_cli(ws, base_image, "--preview", CASE, "everything.py")
    assert done.returncode == 0, done.stderr
    (run_id,) = run_ids(isolated_dirs)
    dropped = roscoe("runs", "discard", run_id, "--json")
    assert dropped.returncode == 0, dropped.stderr
    assert json.loads(dropped.stdout)["preview_state"] == "discarded"
    assert tree(case) == before
    assert not (isolated_dirs / "runs" / run_id / "preview").exists()
    assert roscoe("runs", "apply", run_id).returncode == 2


def test_a_timed_out_or_interrupted_preview_applies_nothing(
    ws: Path, base_image: str, clean: None, isolated_dirs: Path
) -> None:
    case = ws / "projects" / CASE
    before = tree(case)
    timed_out = run_cli(ws, base_image, "--preview", "--timeout", "2", CASE, "slow.py")
    assert timed_out.returncode == 124
    assert b"its changes were discarded" in timed_out.stderr
    proc = spawn_cli(ws, base_image, "--preview", CASE, "slow.py")
    wait_for_output(proc, b"started")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    for run_id in run_ids(isolated_dirs):
        record = record_of(isolated_dirs, run_id)
        assert record["status"] in ("timed_out", "interrupted")
        assert (record["preview_state"], record["discarded_by"]) == ("discarded", "roscoe")
        assert not (isolated_dirs / "runs" / run_id / "preview").exists()
        assert roscoe("runs", "apply", run_id).returncode == 2
    assert tree(case) == before


@pytest.mark.image
def test_preview_and_apply_through_the_service(start_service: Any) -> None:
    live: LiveService = start_service()
    case = live.workspace / "projects" / DEMO_CASE
    fill_case(case)
    (live.workspace / "Tools" / "everything.py").write_text(EVERYTHING)
    (live.workspace / "Tools" / "slow.py").write_text(SLOW)
    before = tree(case)
    plain = roscoe("token", "create", "plain", "--case", DEMO_CASE).stdout.decode().strip()
    applier = (
        roscoe("token", "create", "applier", "--case", DEMO_CASE, "--can-apply")
        .stdout.decode()
        .strip()
    )

    answer = live.post_run({"case": DEMO_CASE, "script": "everything.py", "preview": True})
    assert answer.status == 200, answer.body
    record = answer.json()
    run_id = record["id"]
    assert (record["preview"], record["preview_state"]) == (True, "pending")
    assert tree(case) == before
    expected = tree(live.runs_dir / run_id / "preview")

    refused = live.request("POST", f"/runs/{run_id}/apply", token=plain)
    assert refused.status == 403, refused.body
    applied = live.request("POST", f"/runs/{run_id}/apply", token=applier, timeout=180)
    assert applied.status == 200, applied.body
    assert (applied.json()["preview_state"], applied.json()["applied_by"]) == (
        "applied",
        "applier",
    )
    assert tree(case) == expected  # landed by the apply container, exactly
    assert live.request("POST", f"/runs/{run_id}/apply").status == 409
    assert live.run_containers() == []  # the apply container is gone too

    # A second preview, discarded; a third, cancelled while it runs: the case stays.
    after_apply = tree(case)
    second = live.post_run({"case": DEMO_CASE, "script": "everything.py", "preview": True})
    second_id = second.json()["id"]
    dropped = live.request("POST", f"/runs/{second_id}/discard", token=plain)
    assert dropped.status == 200 and dropped.json()["preview_state"] == "discarded"
    third = live.post_run({"case": DEMO_CASE, "script": "slow.py", "preview": True, "wait": False})
    third_id = third.json()["id"]
    live.wait_for(
        lambda: live.request("GET", f"/runs/{third_id}").json()["status"] == "running", "a run"
    )
    assert live.request("DELETE", f"/runs/{third_id}", timeout=60).status in (200, 202)
    live.wait_for(
        lambda: live.request("GET", f"/runs/{third_id}").json().get("preview_state") == "discarded",
        "the cancelled preview to be discarded",
    )
    assert live.request("POST", f"/runs/{third_id}/apply").status == 409
    assert tree(case) == after_apply


@pytest.mark.image
def test_the_mcp_run_tools_take_preview(start_service: Any) -> None:
    pytest.importorskip("mcp")
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    live: LiveService = start_service()
    case = live.workspace / "projects" / DEMO_CASE
    fill_case(case)
    (live.workspace / "Tools" / "everything.py").write_text(EVERYTHING)
    before = tree(case)

    async def steps() -> Any:
        headers = {"Authorization": f"Bearer {live.token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
            streamable_http_client(f"{live.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            ran = await session.call_tool(
                "run_script", {"case": DEMO_CASE, "script": "everything.py", "preview": True}
            )
            return listed, ran

    async def bounded() -> Any:
        with anyio.fail_after(120):
            return await steps()

    listed, ran = anyio.run(bounded)
    schemas = {tool.name: tool.input_schema for tool in listed.tools}
    assert "preview" in schemas["run_script"]["properties"]
    assert "preview" in schemas["start_run"]["properties"]
    assert not ran.is_error
    assert (ran.structured_content["preview"], ran.structured_content["preview_state"]) == (
        True,
        "pending",
    )
    assert tree(case) == before
