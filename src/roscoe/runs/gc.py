"""`roscoe gc`: remove run containers a killed roscoe left behind, and finish their records.

A run's own roscoe removes its container in every case it survives. What is left is what a
SIGKILLed (or crashed) roscoe could not remove, or a run it lost sight of. A container is
swept when:
  - it is still running past its deadline label (the in-container timeout should have
    killed it long before);
  - the runner container that started it is gone, stopped, or restarted since (labels
    owner-container and owner-started): nobody will collect it, so it is stopped too, even
    if still running, and its record says "interrupted";
  - it is finished (or never started) and its roscoe is gone: the owner pid no longer
    exists on this host;
  - it is finished and its record says "unknown": its roscoe lost sight of it when the
    engine stopped answering, and gave up on it.
A finished container whose owner is alive is otherwise left alone until its deadline: that
roscoe is about to collect it. Containers started from another host name carry pids that
mean nothing here: they are judged by their deadline and their runner only.
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
    LABEL_OWNER_CONTAINER,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_STARTED,
    LABEL_RUN_ID,
    MANAGED_BY_VALUE,
)
from roscoe.runs.outcome import RunStatus

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


# Why a runner container no longer collects the runs it started; None: it does.
RunnerGone = Callable[[str, str | None], str | None]
RecordStatus = Callable[[str], str | None]


def sweep_reason(
    container: dict[str, Any],
    *,
    now: float,
    host: str,
    alive: Callable[[int], bool],
    runner_gone: RunnerGone | None = None,
    record_status: RecordStatus | None = None,
) -> str | None:
    """Why a run container should be removed, or None to keep it (see module docstring)."""
    verdict = _verdict(
        container,
        now=now,
        host=host,
        alive=alive,
        runner_gone=runner_gone,
        record_status=record_status,
    )
    return verdict[0] if verdict else None


def _verdict(
    container: dict[str, Any],
    *,
    now: float,
    host: str,
    alive: Callable[[int], bool],
    runner_gone: RunnerGone | None,
    record_status: RecordStatus | None,
) -> tuple[str, bool] | None:
    """(why it goes, True when that stops a run still under way), or None to keep it."""
    labels = container.get("Labels") or {}
    state = str(container.get("State") or "").lower()
    deadline = _int(labels.get(LABEL_DEADLINE))
    past_deadline = deadline is not None and now > deadline
    runner = labels.get(LABEL_OWNER_CONTAINER)
    gone = runner_gone(runner, labels.get(LABEL_OWNER_STARTED)) if runner and runner_gone else None
    if state in _LIVE_STATES:
        if past_deadline:
            return "still running past its deadline", False
        return (f"still running, but {gone}", True) if gone else None
    what = "finished" if state in ("exited", "dead", "stopped") else f"{state or 'unknown'}"
    why = _why_finished_goes(
        labels,
        what,
        past_deadline=past_deadline,
        gone=gone,
        host=host,
        alive=alive,
        record_status=record_status,
    )
    return (why, False) if why else None


def _why_finished_goes(
    labels: dict[str, str],
    what: str,
    *,
    past_deadline: bool,
    gone: str | None,
    host: str,
    alive: Callable[[int], bool],
    record_status: RecordStatus | None,
) -> str | None:
    if past_deadline:
        return f"{what}, past its deadline"
    if gone:
        return f"{what}, {gone}"
    owner = _int(labels.get(LABEL_OWNER_PID))
    if labels.get(LABEL_OWNER_HOST) == host and owner is not None and not alive(owner):
        return f"{what}, its roscoe (pid {owner}) is gone"
    run_id = labels.get(LABEL_RUN_ID)
    if run_id and record_status is not None and record_status(run_id) == RunStatus.UNKNOWN:
        return f"{what}, its roscoe lost track of it (the engine stopped answering)"
    return None


def collect(engine: GcEngine, dry_run: bool, *, runner_runs_only: bool = False) -> GcResult:
    """Remove (or, with dry_run, list) every run container that is finished or overdue, or
    whose runner is gone; finish the records their roscoe never wrote.

    runner_runs_only: only runs a runner container started whose records are here (the
    service and `roscoe server start` sweep those: pids on the host's name mean nothing
    inside a runner's container, and another data dir's runs are its own runner's).
    """
    result = GcResult(dry_run=dry_run)
    found = engine.containers({LABEL_MANAGED_BY: MANAGED_BY_VALUE, LABEL_KIND: "run"}, all=True)
    now, host = time.time(), socket.gethostname()
    runner_gone = _runner_look(engine)
    for container in found:
        labels = container.get("Labels") or {}
        if runner_runs_only and not _ours_to_sweep(labels):
            continue
        verdict = _verdict(
            container,
            now=now,
            host=host,
            alive=pid_alive,
            runner_gone=runner_gone,
            record_status=_record_status,
        )
        if verdict is None:
            result.kept += 1
            continue
        reason, stopping = verdict
        names = container.get("Names") or []
        item = GcItem(
            container_id=str(container.get("Id", ""))[:12],
            name=str(names[0]).lstrip("/") if names else "",
            run_id=labels.get(LABEL_RUN_ID),
            state=str(container.get("State") or ""),
            reason=reason,
        )
        if dry_run:
            result.removed.append(item)
            continue
        try:
            if item.run_id:
                close_abandoned_record(
                    engine, str(container.get("Id")), item.run_id, reason, stopping=stopping
                )
            engine.remove_container(str(container.get("Id")), force=True)
        except Exception as exc:  # one stubborn container must not stop the sweep
            result.failed.append((item, str(exc).splitlines()[0] if str(exc) else repr(exc)))
            continue
        result.removed.append(item)
    return result


def _runner_look(engine: GcEngine) -> RunnerGone:
    """runner_gone() over the engine, each runner inspected once per sweep."""
    seen: dict[str, dict[str, Any] | None] = {}

    def gone(runner_id: str, started: str | None) -> str | None:
        if runner_id not in seen:
            try:
                seen[runner_id] = engine.inspect_container(runner_id)
            except Exception:  # cannot tell: keep its runs (the safe mistake)
                return None
        inspected = seen[runner_id]
        short = runner_id[:12]
        if inspected is None:
            return f"its runner container ({short}) is gone"
        state = inspected.get("State") or {}
        if not (state.get("Running") or str(state.get("Status") or "").lower() == "running"):
            return f"its runner container ({short}) has stopped"
        if started and str(state.get("StartedAt") or "") != started:
            return f"its runner container ({short}) has restarted since it started the run"
        return None

    return gone


def _ours_to_sweep(labels: dict[str, str]) -> bool:
    """A runner's run whose record is in this runs dir: another data dir's runner (another
    user's, on the same engine) sweeps its own, so its records get finished too."""
    run_id = labels.get(LABEL_RUN_ID)
    return (
        bool(labels.get(LABEL_OWNER_CONTAINER))
        and bool(run_id)
        and (_record_status(str(run_id)) is not None)
    )


def _record_status(run_id: str) -> str | None:
    from roscoe.errors import UsageError
    from roscoe.runs.records import load_run

    try:
        return load_run(run_id).status
    except UsageError:
        return None


def close_abandoned_record(
    engine: GcEngine, container_id: str, run_id: str, reason: str, *, stopping: bool = False
) -> None:
    """Finish the record of a run whose roscoe died or lost sight of it, from its container's
    final state (`stopping`: gc is about to stop it, still running, because its runner is gone).

    Its roscoe never wrote the outcome, so the record still says "running" (or "unknown").
    Records of runs made elsewhere (another data dir) are not here, and are left alone.
    """
    from roscoe.errors import UsageError
    from roscoe.runs.records import load_run, now_iso, write_record

    try:
        record = load_run(run_id)
    except UsageError:
        return
    if record.status not in (RunStatus.RUNNING, RunStatus.UNKNOWN):
        return
    lost = record.status == RunStatus.UNKNOWN
    inspected = engine.inspect_container(container_id)
    if inspected is None:  # another sweep (the service's, a concurrent gc) got there first
        return
    state = inspected.get("State") or {}
    running = bool(state.get("Running"))
    code = state.get("ExitCode")
    if str(state.get("Status", "")).lower() == "created":
        # roscoe died between creating and starting it: engines say exit 0, but nothing ran.
        record.status, record.exit_code, ended = RunStatus.INTERRUPTED, None, "it never started"
    elif running and stopping:
        record.status, record.exit_code = RunStatus.INTERRUPTED, None
        ended = "stopped while running"
    elif running or code is None:
        record.status, record.exit_code, ended = RunStatus.ERROR, None, "still running"
    elif code == 0:
        record.status, record.exit_code, ended = RunStatus.SUCCEEDED, 0, "exited with 0"
    else:  # 137 here is as likely the in-container timeout's kill as the memory limit's
        record.status, record.exit_code = RunStatus.FAILED, int(code)
        ended = f"exited with {code}"
    if lost:
        record.message = (
            f"roscoe lost track of this run when the engine stopped answering ({ended}); "
            f"recorded by roscoe gc ({reason}); the saved output stops where roscoe lost "
            "track of it"
        )
    else:
        record.message = (
            f"roscoe ended before this run did ({ended}); recorded by roscoe gc ({reason}); "
            "the saved output stops where roscoe ended"
        )
    record.finished_at = now_iso()
    write_record(record)
