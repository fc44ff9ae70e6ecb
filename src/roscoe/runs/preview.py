"""Preview runs: the script works on a copy of its case; its changes land only when applied.

The copy is `<run dir>/preview/`, made with `cp -a --reflink=auto`: a copy-on-write clone
where the file system allows it (Btrfs, XFS with reflink), a full copy elsewhere (costing
the case's size in time and disk). It is mounted at /data instead of the case, so the case
itself cannot change. `base.json` in the run's folder keeps, for each path the run touched,
how it looked in the case when the run started (stat and sha256), so that applying can
refuse when the case changed there since.

An overlay mount would avoid the copy, but mounting one needs root on the host (or, through
the engine, a rootful daemon and reading back overlayfs whiteouts); the copy works the same
on Docker and Podman, rootful and rootless, and from inside the runner.

Applying (runs.landing) happens on the host (the CLI) or in a one-shot container the service
starts (`runs.apply_main`), since the runner sees the workspace read-only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.errors import OperationFailed, UsageError
from roscoe.runs import changes
from roscoe.runs.casecopy import remove_tree
from roscoe.runs.landing import Conflict, apply_changes, touched
from roscoe.runs.outcome import RunStatus
from roscoe.runs.records import RunRecord, hand_over, load_run, now_iso, run_dir, write_record

if TYPE_CHECKING:
    from roscoe.runs.plan import RunPlan
    from roscoe.runs.tracking import Tracker

__all__ = ["Conflict", "apply_run", "discard_run", "finish", "prepare"]

PREVIEW_DIR = "preview"
BASE_FILE = "base.json"
LOCK_FILE = ".preview.lock"
PENDING, APPLIED, DISCARDED = "pending", "applied", "discarded"
# A run stopped part-way (timed out, cancelled, killed, an engine failure) leaves nothing
# to apply: its changes are dropped when it ends.
APPLICABLE = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# -- making the preview --------------------------------------------------------------------
def prepare(plan: RunPlan, tracker: Tracker) -> RunPlan:
    """Make the run's folder, copy the case into it, and mount the copy at /data."""
    from roscoe.runs.plan import DATA_MOUNT
    from roscoe.runs.records import make_run_dir

    where = make_run_dir(plan.run_id)
    try:
        tracker.preview(where / PREVIEW_DIR)
    except BaseException:
        remove_tree(where)
        raise
    source = paths.host_runs_dir() / plan.run_id / PREVIEW_DIR
    mode = plan.binds[0].rsplit(":", 1)[1]  # rw, and :z on SELinux hosts
    return replace(plan, binds=[f"{source}:{DATA_MOUNT}:{mode}", *plan.binds[1:]])


def abandon(run_id: str) -> None:
    """The container could not be made: the run never was; nothing of it stays."""
    remove_tree(run_dir(run_id))


def finish(record: RunRecord, tracker: Tracker, case_path: str) -> None:
    """After the run: keep its changes for `apply`, or drop them when it was stopped."""
    where = run_dir(record.id)
    found = record.changes or {}
    if record.status in APPLICABLE and found.get("tracked") and tracker.case is not None:
        write_base(where / BASE_FILE, case_path, tracker.case, found)
        record.preview_state = PENDING
        return
    remove_tree(where / PREVIEW_DIR)
    record.preview_state = DISCARDED
    record.discarded_at = now_iso()
    record.discarded_by = "roscoe"


def write_base(where: Path, case_path: str, case: changes.Snapshot, found: dict[str, Any]) -> None:
    """base.json: the case's path on the host, and how each path the preview would touch
    looked in the case when the run started ([kind, size, mtime, ctime, inode, mode, sha])."""
    base: dict[str, Any] = {}
    for path in sorted(touched(found)):
        entry = case.stats.get(path)
        base[path] = None if entry is None else [*entry, case.hashes.get(path)]
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"version": 1, "case_path": case_path, "paths": base}, out)
    hand_over(where)


@dataclass(frozen=True)
class Base:
    case_path: Path
    paths: dict[str, Any]


def load_base(run_folder: Path) -> Base:
    try:
        data = json.loads((run_folder / BASE_FILE).read_text(encoding="utf-8"))
        found = data["paths"]
        if not isinstance(found, dict) or not isinstance(data["case_path"], str):
            raise TypeError("not a preview's base")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OperationFailed(f"the preview's {BASE_FILE} is unusable: {exc}") from exc
    return Base(Path(data["case_path"]), found)


# -- checks --------------------------------------------------------------------------------
def check_pending(record: RunRecord) -> None:
    """UsageError (2) unless the record is a preview whose changes wait to be applied."""
    if not record.preview:
        raise UsageError(
            f"run {record.id} was not a preview: its changes are in the case already",
            hint="`roscoe run --preview ...` makes a run whose changes wait to be applied",
        )
    if record.preview_state == APPLIED:
        raise UsageError(
            f"run {record.id} was applied at {record.applied_at} by {record.applied_by}",
            hint=f"its changes are in the case now; `roscoe runs show {record.id}` lists them",
        )
    if record.preview_state == DISCARDED:
        why = "" if record.status in APPLICABLE else f" (the run ended {record.status})"
        raise UsageError(
            f"run {record.id}'s changes were discarded at {record.discarded_at}{why}",
            hint="run it again with --preview",
        )
    if record.preview_state != PENDING:
        raise UsageError(f"run {record.id} is still under way", hint="wait for it to end")


@contextlib.contextmanager
def locked(run_folder: Path) -> Iterator[None]:
    """One apply or discard of a run at a time."""
    where = run_folder / LOCK_FILE
    fd = os.open(where, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    hand_over(where)  # the service (uid 1000 under a root roscoe) locks it too
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- apply and discard, on the host (CLI) ---------------------------------------------------
Land = Callable[[RunRecord, Base], int]


def _here(record: RunRecord, base: Base) -> int:
    where = run_dir(record.id) / PREVIEW_DIR
    return apply_changes(base.case_path, where, record.changes or {}, base.paths, record.id)


def apply_run(run_id: str, applied_by: str, land: Land = _here) -> tuple[RunRecord, int]:
    """Land a preview's changes in its case (all, or none on a conflict), and record it:
    (the record, how many entries changed). `land` does the landing (here, by default; the
    service does it in a one-shot container). UsageError (2) for a run that is not a pending
    preview; Conflict (1) naming the paths that changed since; OperationFailed (1)."""
    where = run_dir(run_id)
    load_run(run_id)  # UsageError for an unknown id, before a lock file is made
    with locked(where):
        record = load_run(run_id)
        check_pending(record)
        count = land(record, load_base(where))
        record.preview_state = APPLIED
        record.applied_at = now_iso()
        record.applied_by = applied_by
        write_record(record)
        remove_tree(where / PREVIEW_DIR)
    return record, count


def discard_run(run_id: str, discarded_by: str) -> RunRecord:
    """Drop a preview's changes: the copy goes, the case is as it was, the record says so."""
    where = run_dir(run_id)
    load_run(run_id)
    with locked(where):
        record = load_run(run_id)
        check_pending(record)
        remove_tree(where / PREVIEW_DIR)
        record.preview_state = DISCARDED
        record.discarded_at = now_iso()
        record.discarded_by = discarded_by
        write_record(record)
    return record
