"""Shared by the one-shot run integration tests (no tests here): workspace, CLI, leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from helpers import roscoe, roscoe_containers
from roscoe.labels import LABEL_OWNER_PID, LABEL_RUN_ID

CASE = "case-1"


def make_workspace(root: Path, scripts: dict[str, str]) -> Path:
    """projects/case-1 (writable by the uid 1000 the script runs as) and Tools/ with scripts."""
    case = root / "projects" / CASE
    case.mkdir(parents=True)
    (case / "input.txt").write_text("hello\n")
    for folder in (root, root / "projects", case):
        folder.chmod(0o777)
    tools = root / "Tools"
    tools.mkdir()
    for name, text in scripts.items():
        (tools / name).write_text(text)
    return root


def run_cli(
    ws: Path, image: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """`roscoe run --workspace WS --image IMAGE ARGS...` in a subprocess."""
    return roscoe("run", "--workspace", str(ws), "--image", image, *args, timeout=timeout)


def spawn_cli(ws: Path, image: str, *args: str) -> subprocess.Popen[bytes]:
    """The same, started in the background (for signals)."""
    return subprocess.Popen(
        [sys.executable, "-m", "roscoe", "run", "--workspace", str(ws), "--image", image, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


def wait_for_output(proc: subprocess.Popen[bytes], marker: bytes, within: float = 60) -> bytes:
    """Read the process's stdout until `marker` shows up; what was read so far."""
    seen = bytearray()
    found = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                return
            seen.extend(chunk)
            if marker in seen:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(within):
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"{marker!r} never appeared; stdout {bytes(seen)!r}, stderr {err!r}")
    return bytes(seen)


def run_ids(data_dir: Path) -> list[str]:
    runs = data_dir / "runs"
    # .hashes is the change-tracking cache, not a run
    return sorted(p.name for p in runs.iterdir() if p.name[0] != ".") if runs.is_dir() else []


def record_of(data_dir: Path, run_id: str) -> dict[str, Any]:
    return dict(json.loads((data_dir / "runs" / run_id / "run.json").read_text()))


def leftovers(engine: Any, data_dir: Path, owner_pids: list[int] | None = None) -> list[str]:
    """Containers still there for this test's runs (by run id, or by owner pid); removed."""
    found: list[dict[str, Any]] = []
    for run_id in run_ids(data_dir):
        found += roscoe_containers(engine, **{LABEL_RUN_ID: run_id})
    for pid in owner_pids or []:
        found += roscoe_containers(engine, **{LABEL_OWNER_PID: str(pid)})
    names = sorted({str(c["Id"]) for c in found})
    for container_id in names:
        engine.remove_container(container_id, force=True)
    return names


def wait_until(check: Any, within: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return bool(check())
