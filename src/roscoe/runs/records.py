"""Run records: `<data dir>/runs/<id>/run.json` and the saved output `output.log`.

Shared by the CLI and the execution service. Ids are checked against one pattern before
they become a path, so a run id can never name a folder outside the runs dir.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from roscoe.config import paths
from roscoe.config.atomic import write_atomic
from roscoe.errors import UsageError
from roscoe.runs.outcome import RunStatus

RECORD_FILE = "run.json"
OUTPUT_FILE = "output.log"

# Letters, digits, '.', '_', '-', starting with a letter or digit: safe as a folder name and
# as part of a container name. No '/', so no traversal; never '.' or '..' by itself.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def new_run_id() -> str:
    """Sortable by start time, unique across concurrent runs: 20261121-112715-3f9a1c2e."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + os.urandom(4).hex()


def is_run_id(name: str) -> bool:
    """True when `name` has the shape of a run id (and so names a run folder)."""
    return bool(_RUN_ID.fullmatch(name))


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"'{run_id}' is not a run id",
            hint="run ids look like 20261121-112715-3f9a1c2e; see `roscoe runs list`",
        )
    return run_id


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RunRecord:
    """What happened in one run. `to_json()` keys are a contract: keep them stable.

    `exit_code` is the code `roscoe run` exits with: the script's own code when it finished,
    124 timed out, 137 killed at the memory limit, 130 interrupted, 125 engine error or
    engine lost (status "unknown", until gc records the real end); None while running.
    """

    id: str
    case: str
    script: str
    args: list[str] = field(default_factory=list)
    image: str = ""
    image_digest: str | None = None
    engine: str | None = None
    isolation: str = "runc"  # runc, or gvisor (runs.isolation)
    status: RunStatus = RunStatus.RUNNING
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    timed_out: bool = False
    output_file: str = OUTPUT_FILE  # informative only: the output is always OUTPUT_FILE
    output_bytes: int = 0
    saved_output_truncated: bool = False  # the saved output stopped at MAX_SAVED_OUTPUT
    message: str | None = None
    requested_by: str | None = None  # cli:<user name>, or the service token's name
    script_sha256: str | None = None  # the script file as it was run
    env_names: list[str] = field(default_factory=list)  # never the values
    # {"tracked": true, "created": [...], "modified": [...], "deleted": [...]} or
    # {"tracked": false, "reason": ...}; None while running (runs.changes)
    changes: dict[str, Any] | None = None
    # A preview's changes wait in the run's folder: "pending", then "applied" or
    # "discarded" (runs.preview); None for a run that was not a preview.
    preview: bool = False
    preview_state: str | None = None
    applied_at: str | None = None
    applied_by: str | None = None
    discarded_at: str | None = None
    discarded_by: str | None = None
    # What the script used (runs/launcher.py): the largest resident set of any of its
    # processes, and the CPU time of all of them; None when it could not be had.
    peak_memory_bytes: int | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)  # given as its value ("running") or as itself

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """A record from its JSON; ValueError naming the first field missing or of the wrong
        type (a record is a file on disk: anything may be in it). Unknown keys are ignored."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in data:
                if item.name in _REQUIRED:
                    raise ValueError(f"'{item.name}' is missing")
                continue
            value = data[item.name]
            if not _FIELD_TYPES[str(item.type)](value):
                raise ValueError(f"'{item.name}' is {_shown(value)}, not {item.type}")
            values[item.name] = list(value) if isinstance(value, list) else value
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.status not in (RunStatus.QUEUED, RunStatus.RUNNING)


_REQUIRED = ("id", "case", "script")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no number


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


# What each field's JSON value may be, by the field's annotation.
_FIELD_TYPES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "int": _is_int,
    "int | None": lambda v: v is None or _is_int(v),
    "float | None": lambda v: v is None or _is_number(v),
    "bool": lambda v: isinstance(v, bool),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    "dict[str, Any] | None": lambda v: v is None or isinstance(v, dict),
    "RunStatus": lambda v: v in RunStatus.__members__.values(),
}


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_dir(run_id: str) -> Path:
    return paths.run_dir(check_run_id(run_id))


def make_run_dir(run_id: str) -> Path:
    """A new, private (0700) folder for one run; UsageError (2) when the id is taken."""
    paths.ensure_runs_dir()
    where = run_dir(run_id)
    try:
        where.mkdir(mode=0o700)  # unique ids: an existing folder is a clash
    except FileExistsError:
        raise UsageError(f"run id '{run_id}' is already taken") from None
    os.chmod(where, 0o700)  # mkdir's mode went through the umask
    hand_over(where)
    return where


def runs_owner() -> tuple[int, int] | None:
    """Who new files and folders under runs/ must belong to: the runs folder's owner when we
    are root and it is not (None: leave them ours).

    Under a root roscoe, `roscoe server start` hands runs/ to the runner's unprivileged user,
    so that its service can list and read every run; the CLI's records must follow, or the
    service would see only its own. The data dir above stays 0700 root: nobody else gets in.
    """
    if os.getuid() != 0:
        return None
    owner = paths.runs_dir().stat()
    if (owner.st_uid, owner.st_gid) == (0, 0):
        return None
    return owner.st_uid, owner.st_gid


def hand_over(path: Path) -> None:
    """Give a new file or folder under runs/ to the runs folder's owner (see runs_owner)."""
    owner = runs_owner()
    if owner is not None:
        os.chown(path, *owner)


def write_record(record: RunRecord) -> Path:
    """Write run.json atomically (config.atomic): readers never see half a record, and a crash
    leaves the previous one. 0600: records are readable by their owner only."""
    where = run_dir(record.id)
    if not where.is_dir():
        make_run_dir(record.id)
    target = where / RECORD_FILE
    text = json.dumps(record.to_json(), indent=2) + "\n"
    write_atomic(target, text, mode=0o600, owner=runs_owner())
    return target


def load_run(run_id: str) -> RunRecord:
    """The record of one run; UsageError (2) for a malformed or unknown id."""
    where = run_dir(run_id) / RECORD_FILE
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"no run with id '{run_id}'", hint="`roscoe runs list` shows the recent runs"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"the record of run '{run_id}' is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"the record of run '{run_id}' is not a JSON object")
    try:
        record = RunRecord.from_json(data)
    except ValueError as exc:
        raise UsageError(f"the record of run '{run_id}' is malformed: {exc}") from exc
    if record.id != run_id:
        raise UsageError(
            f"the record of run '{run_id}' is malformed: it says it is run '{record.id}'"
        )
    return record


@dataclass
class RunListing:
    """Recent runs, newest first, and the records that could not be read (skipped)."""

    runs: list[RunRecord]
    skipped: list[str] = field(default_factory=list)  # one line each: which and why


def scan_runs(
    limit: int = 20, case: str | None = None, shown: Callable[[str], bool] | None = None
) -> RunListing:
    """The most recent runs first (by start time), of one case when `case` is given, of the
    cases `shown` accepts when it is. One unreadable or malformed record never takes the
    listing down: it is skipped, and said in `skipped`."""
    root = paths.runs_dir()
    try:
        entries = [e for e in os.scandir(root) if e.is_dir() and _RUN_ID.fullmatch(e.name)]
    except FileNotFoundError:
        return RunListing([])
    listing = RunListing([])
    for entry in entries:
        try:
            listing.runs.append(load_run(entry.name))
        except UsageError as exc:
            if (Path(entry.path) / RECORD_FILE).exists():
                listing.skipped.append(exc.message)
            # else: a run folder whose record is not written yet (it is being created)
    if case is not None:
        listing.runs = [record for record in listing.runs if record.case == case]
    if shown is not None:
        listing.runs = [record for record in listing.runs if shown(record.case)]
    listing.runs.sort(key=lambda r: (r.started_at or "", r.id), reverse=True)
    del listing.runs[max(limit, 0) :]
    return listing


def list_runs(limit: int = 20, case: str | None = None) -> list[RunRecord]:
    """The most recent runs first (by start time); unreadable records are skipped."""
    return scan_runs(limit, case).runs


def read_output(run_id: str, tail_bytes: int | None = None) -> tuple[bytes, bool]:
    """A run's saved output (stdout and stderr as they arrived); True when cut to the tail.

    Always <run dir>/output.log: the record's `output_file` is never used as a path (a record
    is a file on disk, and must not be able to point a reader at any other file).
    """
    load_run(run_id)  # UsageError for an unknown or malformed id
    where = run_dir(run_id) / OUTPUT_FILE
    try:
        with where.open("rb") as saved:
            size = os.fstat(saved.fileno()).st_size
            if tail_bytes is not None and size > tail_bytes:
                saved.seek(size - tail_bytes)
                return saved.read(tail_bytes), True
            return saved.read(), False
    except FileNotFoundError:
        return b"", False
