"""`roscoe gc`: remove run containers a killed roscoe left behind.

A run's own roscoe removes its container in every case it survives. What is left is what a
SIGKILLed (or crashed) roscoe could not remove. A container is swept when:
  - it is still running past its deadline label (the in-container timeout should have
    killed it long before), or
  - it is finished (or never started) and its roscoe is gone: the owner pid no longer
    exists on this host. A finished container whose owner is alive is left alone until its
    deadline: that roscoe is about to collect it.
Containers started from another host name (the execution service runs in a container with
its own pid numbers) are judged by their deadline only.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe.labels import (
    LABEL_DEADLINE,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_RUN_ID,
    MANAGED_BY_VALUE,
)

if TYPE_CHECKING:
    from roscoe.engine.protocols import GcEngine

_LIVE_STATES = ("running", "paused", "restarting", "removing")


@dataclass(frozen=True)
class GcItem:
    container_id: str
    name: str
    run_id: str | None
    state: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "name": self.name,
            "run_id": self.run_id,
            "state": self.state,
            "reason": self.reason,
        }


@dataclass
class GcResult:
    dry_run: bool
    removed: list[GcItem] = field(default_factory=list)  # or, with dry_run, would be
    kept: int = 0  # run containers that are still legitimately in use
    failed: list[tuple[GcItem, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": [item.to_json() for item in self.removed],
            "kept": self.kept,
            "failed": [{**item.to_json(), "error": error} for item, error in self.failed],
        }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sweep_reason(
    container: dict[str, Any],
    *,
    now: float,
    host: str,
    alive: Callable[[int], bool],
) -> str | None:
    """Why a run container should be removed, or None to keep it (see module docstring)."""
    labels = container.get("Labels") or {}
    state = str(container.get("State") or "").lower()
    deadline = _int(labels.get(LABEL_DEADLINE))
    past_deadline = deadline is not None and now > deadline
    if state in _LIVE_STATES:
        return "still running past its deadline" if past_deadline else None
    what = "finished" if state in ("exited", "dead", "stopped") else f"{state or 'unknown'}"
    if past_deadline:
        return f"{what}, past its deadline"
    owner = _int(labels.get(LABEL_OWNER_PID))
    if labels.get(LABEL_OWNER_HOST) == host and owner is not None and not alive(owner):
        return f"{what}, its roscoe (pid {owner}) is gone"
    return None


def collect(engine: GcEngine, dry_run: bool) -> GcResult:
    """Remove (or, with dry_run, list) every run container that is finished or overdue."""
    result = GcResult(dry_run=dry_run)
    found = engine.containers({LABEL_MANAGED_BY: MANAGED_BY_VALUE, LABEL_KIND: "run"}, all=True)
    now, host = time.time(), socket.gethostname()
    for container in found:
        reason = sweep_reason(container, now=now, host=host, alive=pid_alive)
        if reason is None:
            result.kept += 1
            continue
        names = container.get("Names") or []
        item = GcItem(
            container_id=str(container.get("Id", ""))[:12],
            name=str(names[0]).lstrip("/") if names else "",
            run_id=(container.get("Labels") or {}).get(LABEL_RUN_ID),
            state=str(container.get("State") or ""),
            reason=reason,
        )
        if dry_run:
            result.removed.append(item)
            continue
        try:
            if item.run_id:
                close_abandoned_record(engine, str(container.get("Id")), item.run_id, reason)
            engine.remove_container(str(container.get("Id")), force=True)
        except Exception as exc:  # one stubborn container must not stop the sweep
            result.failed.append((item, str(exc).splitlines()[0] if str(exc) else repr(exc)))
            continue
        result.removed.append(item)
    return result


def close_abandoned_record(engine: GcEngine, container_id: str, run_id: str, reason: str) -> None:
    """Finish the record of a run whose roscoe died, from its container's final state.

    Its roscoe never wrote the outcome, so the record still says "running". Records of runs
    made elsewhere (another data dir, the service's) are not here, and are left alone.
    """
    from roscoe.errors import UsageError
    from roscoe.runs.outcome import RunStatus
    from roscoe.runs.records import load_run, now_iso, write_record

    try:
        record = load_run(run_id)
    except UsageError:
        return
    if record.status != RunStatus.RUNNING:
        return
    state = (engine.inspect_container(container_id) or {}).get("State") or {}
    running = bool(state.get("Running"))
    code = state.get("ExitCode")
    if str(state.get("Status", "")).lower() == "created":
        # roscoe died between creating and starting it: engines say exit 0, but nothing ran.
        record.status, record.exit_code, ended = RunStatus.INTERRUPTED, None, "it never started"
    elif running or code is None:
        record.status, record.exit_code, ended = RunStatus.ERROR, None, "still running"
    elif code == 0:
        record.status, record.exit_code, ended = RunStatus.SUCCEEDED, 0, "exited with 0"
    else:  # 137 here is as likely the in-container timeout's kill as the memory limit's
        record.status, record.exit_code = RunStatus.FAILED, int(code)
        ended = f"exited with {code}"
    record.message = (
        f"roscoe ended before this run did ({ended}); recorded by roscoe gc ({reason}); "
        "the saved output stops where roscoe ended"
    )
    record.finished_at = now_iso()
    write_record(record)
