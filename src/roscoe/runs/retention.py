"""Retention of run folders: `roscoe runs prune`, and the service's own pruning.

A policy holds up to three limits; a finished run is removed when any of them says so:
  - older_than: it ended longer ago than this;
  - keep: it is not among the newest `keep` finished runs;
  - max_size: the runs folder is larger than this, and it is among the oldest.
A run whose record says `running` is never removed (gc finishes the records of runs whose
roscoe died), nor is a folder without a readable record that changed in the last minutes: a
run being set up. A folder is renamed out of the way (a name `list_runs` never reads) before
it is deleted, so readers never see half a run, and two prunes at once never fight over one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.errors import UsageError
from roscoe.runs.records import RECORD_FILE, is_run_id

if TYPE_CHECKING:
    from roscoe.config.settings import Settings

# A folder without a readable record younger than this may be a run being set up.
SETUP_GRACE_S = 600.0
_PRUNING_PREFIX = ".pruning-"


@dataclass(frozen=True)
class Policy:
    older_than_s: float | None = None
    keep: int | None = None
    max_size: int | None = None
    # As the user wrote them, for messages and --json.
    older_than_text: str | None = None
    max_size_text: str | None = None

    @property
    def empty(self) -> bool:
        return self.older_than_s is None and self.keep is None and self.max_size is None

    def to_json(self) -> dict[str, Any]:
        return {
            "older_than": self.older_than_text,
            "keep": self.keep,
            "max_size": self.max_size_text,
            "max_size_bytes": self.max_size,
        }

    def describe(self) -> str:
        parts = []
        if self.older_than_text:
            parts.append(f"older than {self.older_than_text}")
        if self.keep is not None:
            parts.append(f"beyond the newest {self.keep}")
        if self.max_size_text:
            parts.append(f"over {self.max_size_text} in all")
        return ", ".join(parts) or "nothing"


KEYS = ("runs.older_than", "runs.keep", "runs.max_size")


def policy_from_settings(
    settings: Settings,
    older_than: str | None = None,
    keep: int | None = None,
    max_size: str | None = None,
) -> Policy:
    """The options given, else the configured retention (runs.older_than, keep, max_size).

    Options replace the configuration as a whole: `--keep 10` alone keeps ten runs, whatever
    runs.older_than says.
    """
    from roscoe.config.parse import parse_bytes, parse_duration
    from roscoe.config.settings import validate

    if older_than is not None or keep is not None or max_size is not None:
        values = {
            "runs.older_than": None
            if older_than is None
            else validate("runs.older_than", older_than, "--older-than"),
            "runs.keep": None if keep is None else validate("runs.keep", keep, "--keep"),
            "runs.max_size": None
            if max_size is None
            else validate("runs.max_size", max_size, "--max-size"),
        }
    else:
        values = {key: settings.get(key) for key in KEYS}
    age, size = values["runs.older_than"], values["runs.max_size"]
    return Policy(
        older_than_s=None if age is None else parse_duration(age),
        keep=values["runs.keep"],
        max_size=None if size is None else parse_bytes(size),
        older_than_text=age,
        max_size_text=size,
    )


@dataclass(frozen=True)
class RunFolder:
    id: str
    path: Path
    status: str | None  # None: no readable record
    ended: float  # unix seconds: finished_at, else started_at, else the folder's mtime
    bytes: int

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class Pruned:
    id: str
    status: str | None
    ended_at: str
    bytes: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PruneResult:
    dry_run: bool
    policy: Policy
    removed: list[Pruned] = field(default_factory=list)  # or, with dry_run, would be
    kept: int = 0
    kept_running: int = 0  # among kept: running, or being set up
    remaining_bytes: int = 0  # what the runs folder holds afterwards (or would)
    failed: list[tuple[Pruned, str]] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(item.bytes for item in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "policy": self.policy.to_json(),
            "removed": [item.to_json() for item in self.removed],
            "freed_bytes": self.freed_bytes,
            "kept": self.kept,
            "kept_running": self.kept_running,
            "remaining_bytes": self.remaining_bytes,
            "failed": [{**item.to_json(), "error": error} for item, error in self.failed],
        }


def folder_bytes(path: Path) -> int:
    """The size of every file under `path` (symlinks not followed); gone files count 0."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def scan(root: Path | None = None) -> list[RunFolder]:
    """Every run folder, with its status, end time and size; a missing runs folder is empty."""
    root = root or paths.runs_dir()
    try:
        entries = [e for e in os.scandir(root) if is_run_id(e.name) and e.is_dir()]
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        path = Path(entry.path)
        status, ended = _record_facts(path)
        if ended is None:
            try:
                ended = entry.stat().st_mtime
            except OSError:
                continue  # removed meanwhile
        found.append(RunFolder(entry.name, path, status, ended, folder_bytes(path)))
    return found


def _record_facts(path: Path) -> tuple[str | None, float | None]:
    """(status, end time) from a record, tolerating any malformed record."""
    try:
        data = json.loads((path / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    status = data.get("status")
    status = status if isinstance(status, str) else None
    for key in ("finished_at", "started_at"):
        when = _timestamp(data.get(key))
        if when is not None:
            return status, when
    return status, None


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def plan(
    folders: list[RunFolder], policy: Policy, now: float | None = None
) -> tuple[list[tuple[RunFolder, str]], list[RunFolder]]:
    """(what to remove with the reason, what to keep), by the rules in the module docstring."""
    now = time.time() if now is None else now
    finished = sorted(
        (f for f in folders if not (f.running or _settling(f, now))),
        key=lambda f: (f.ended, f.id),
        reverse=True,
    )
    reasons: dict[str, str] = {}
    for index, folder in enumerate(finished):
        if policy.keep is not None and index >= policy.keep:
            reasons[folder.id] = f"beyond the newest {policy.keep}"
        elif policy.older_than_s is not None and now - folder.ended > policy.older_than_s:
            reasons[folder.id] = f"ended more than {policy.older_than_text} ago"
    if policy.max_size is not None:
        left = sum(f.bytes for f in folders) - sum(f.bytes for f in finished if f.id in reasons)
        for folder in reversed(finished):  # oldest first
            if left <= policy.max_size:
                break
            if folder.id not in reasons:
                reasons[folder.id] = f"the runs folder is over {policy.max_size_text}"
                left -= folder.bytes
    removed = [(f, reasons[f.id]) for f in reversed(finished) if f.id in reasons]
    kept = [f for f in folders if f.id not in reasons]
    return removed, kept


def _settling(folder: RunFolder, now: float) -> bool:
    return folder.status is None and now - folder.ended < SETUP_GRACE_S


def prune(policy: Policy, dry_run: bool = False, now: float | None = None) -> PruneResult:
    """Remove (or with dry_run, list) the run folders the policy says to; never a running one."""
    if policy.empty:
        raise UsageError(
            "no retention to apply: neither options nor settings say what to remove",
            hint="pass --older-than 30d, --keep N or --max-size 5g, or set runs.older_than, "
            "runs.keep or runs.max_size (`roscoe config set runs.keep 500`)",
        )
    now = time.time() if now is None else now
    if not dry_run:
        _sweep_leftovers(paths.runs_dir())
    folders = scan()
    chosen, kept = plan(folders, policy, now)
    result = PruneResult(dry_run=dry_run, policy=policy)
    result.kept = len(kept)
    result.kept_running = sum(1 for f in kept if f.running or _settling(f, now))
    result.remaining_bytes = sum(f.bytes for f in kept)
    for folder, reason in chosen:
        item = Pruned(folder.id, folder.status, _iso(folder.ended), folder.bytes, reason)
        if dry_run:
            result.removed.append(item)
            continue
        try:
            _remove(folder)
        except OSError as exc:
            result.failed.append((item, exc.strerror or str(exc)))
            result.remaining_bytes += folder.bytes
            continue
        result.removed.append(item)
    return result


def _remove(folder: RunFolder) -> None:
    aside = folder.path.with_name(f"{_PRUNING_PREFIX}{folder.id}.{os.getpid()}")
    try:
        os.rename(folder.path, aside)
    except FileNotFoundError:
        return  # another prune took it
    shutil.rmtree(aside)


def _sweep_leftovers(root: Path) -> None:
    """Finish the deletions an interrupted prune left half done."""
    try:
        leftovers = [e.path for e in os.scandir(root) if e.name.startswith(_PRUNING_PREFIX)]
    except FileNotFoundError:
        return
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def _iso(when: float) -> str:
    from datetime import timezone

    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def runs_folder_bytes() -> tuple[int, int]:
    """(run folders, bytes) in the runs folder, for `roscoe doctor`."""
    folders = scan()
    return len(folders), sum(f.bytes for f in folders)
