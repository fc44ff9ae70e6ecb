"""Shared by the one-shot run integration tests (no tests here): workspace, CLI, leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from helpers import ROOTLESS, cli_command, roscoe, roscoe_containers
from helpers_infra import rootless_missing_controllers, rootless_podman_settings
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


def run_uid(engine_name: str) -> int:
    """The uid a run's script has, inside and on the host: the invoking user's (the rootless
    test user's under podman-rootless: keep-id), 1000 under a root roscoe."""
    if engine_name == ROOTLESS:
        user = rootless_podman_settings()
        assert user is not None
        return user.uid
    return 1000 if os.getuid() == 0 else os.getuid()


def limits_unenforced(engine_name: str) -> tuple[str, ...]:
    """The limits' cgroup controllers the engine cannot use: under podman-rootless on a host
    that delegates none to the user (cgroup v1), memory and pids; else none."""
    if engine_name != ROOTLESS:
        return ()
    user = rootless_podman_settings()
    assert user is not None
    return rootless_missing_controllers(user)


def run_cli(
    ws: Path, image: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`roscoe run --workspace WS --image IMAGE ARGS...` in a subprocess."""
    return roscoe("run", "--workspace", str(ws), "--image", image, *args, timeout=timeout, env=env)


def spawn_cli(ws: Path, image: str, *args: str) -> subprocess.Popen[bytes]:
    """The same, started in the background (for signals)."""
    argv, env = cli_command(["run", "--workspace", str(ws), "--image", image, *args])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


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
