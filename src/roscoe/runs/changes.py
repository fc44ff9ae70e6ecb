"""What a run changed in its case: the case walked before and after the run, compared.

The before-walk stats every entry (no symlink is followed) and takes each file's sha256 from
the case's hash cache when the file's stat still matches it; only files the cache does not
vouch for are hashed, within a time budget. The after-walk stats again and hashes only what
may have changed: new entries, and files whose size, mtime, ctime or inode moved (or whose
timestamps were too recent to trust, as git's "racily clean" index entries). A file rewritten
with the same content is therefore not listed; a rename is a deletion plus a creation.

A case too large to walk within the bounds is recorded as not tracked, with the reason: never
silently skipped. Nothing here knows about containers or transports; `runs.execute` uses it
for every run, from the CLI, the service and MCP alike.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roscoe.runs.watch import CaseWatch, Touched

# Bounds: a walk of more entries, or longer, gives up and the record says so.
MAX_ENTRIES = 200_000
MAX_WALK_S = 30.0
# Before the run, files the cache cannot vouch for are hashed for this long at most; the
# rest are compared by their stat alone (a same-content rewrite of one then shows as modified).
BEFORE_HASH_BUDGET_S = 5.0
# Timestamps this close to the walk cannot prove a file unchanged: a write in the same clock
# tick (one second or two on some file systems) leaves them as they were.
RACY_NS = 2_000_000_000
HASH_CHUNK = 1 << 20

FILE, DIR, SYMLINK, OTHER = "file", "dir", "symlink", "other"

# One entry's stat, as compared: (kind, size, mtime_ns, ctime_ns, inode, permission bits).
Stat = tuple[str, int, int, int, int, int]


class TooLarge(Exception):
    """The walk went past MAX_ENTRIES or MAX_WALK_S; the message says which."""


class Doubt(Exception):
    """The events cannot vouch for the paths they left out: walk the whole case again."""


@dataclass
class Snapshot:
    """A case as one walk saw it: stats by relative path, and the hashes known so far."""

    root: Path
    stats: dict[str, Stat]
    taken_ns: int  # wall clock when the walk began, for the racy check
    hashes: dict[str, str] = field(default_factory=dict)  # sha256 of files, by path
    targets: dict[str, str] = field(default_factory=dict)  # symlink targets, by path
    linked: set[str] = field(default_factory=set)  # files with more than one hard link
    unhashed: int = 0  # files whose hash the budget left unknown
    hashed_files: int = 0  # files read to hash them (not taken from the cache)
    hashed_bytes: int = 0

    def racy(self, entry: Stat) -> bool:
        return max(entry[2], entry[3]) >= self.taken_ns - RACY_NS


_KINDS = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK}


def stat_entry(info: os.stat_result) -> Stat:
    """One entry's stat as the walks compare it."""
    mode = info.st_mode
    kind = _KINDS.get(stat.S_IFMT(mode), OTHER)
    if kind == DIR:  # a folder's times move with its entries, which are compared themselves
        return (kind, 0, 0, 0, info.st_ino, stat.S_IMODE(mode))
    return (kind, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, stat.S_IMODE(mode))


class _Limits:
    def __init__(self, max_entries: int, max_seconds: float) -> None:
        self.max_entries = max_entries
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds

    def check(self, count: int) -> None:
        if count > self.max_entries:
            raise TooLarge(f"the case has more than {self.max_entries} files and folders")
        if time.monotonic() > self.deadline:
            raise TooLarge(f"walking the case took longer than {self.max_seconds:g} s")


def walk(
    root: Path,
    *,
    watch: CaseWatch | None = None,
    max_entries: int | None = None,
    max_seconds: float | None = None,
) -> Snapshot:
    """Stat every entry under `root`, iteratively, never following a symlink. TooLarge.

    With `watch`, every folder is watched before it is listed (watch.Unavailable when the
    kernel refuses).
    """
    snapshot = Snapshot(root=root, stats={}, taken_ns=time.time_ns())
    limits = _Limits(max_entries or MAX_ENTRIES, max_seconds or MAX_WALK_S)
    _walk_into(snapshot, str(root), "", limits, watch)
    return snapshot


def _walk_into(
    snapshot: Snapshot, top: str, relative: str, limits: _Limits, watch: CaseWatch | None
) -> None:
    stats, targets, linked = snapshot.stats, snapshot.targets, snapshot.linked
    pending: list[tuple[str, str]] = [(top, relative)]
    while pending:
        folder, name = pending.pop()
        if watch is not None:
            watch.add(folder, name)
        prefix = f"{name}/" if name else ""
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue  # went away between being listed and being opened
        with entries:
            for item in entries:
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                path = prefix + item.name
                mode = info.st_mode
                kind = _KINDS.get(stat.S_IFMT(mode), OTHER)
                # This loop is the cost of tracking: one lstat per entry and little else.
                if kind == DIR:
                    stats[path] = (DIR, 0, 0, 0, info.st_ino, mode & 0o7777)
                    pending.append((item.path, path))
                    continue
                stats[path] = (
                    kind,
                    info.st_size,
                    info.st_mtime_ns,
                    info.st_ctime_ns,
                    info.st_ino,
                    mode & 0o7777,
                )
                if info.st_nlink > 1:
                    linked.add(path)
                if kind == SYMLINK:
                    targets[path] = _readlink(item.path)
        limits.check(len(stats))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def rewalk(before: Snapshot, touched: Touched) -> tuple[Snapshot, set[str], set[str]]:
    """The case after the run from the before-walk and what the events said.

    Returns (after, the paths to compare, the files to hash even with an unchanged stat).
    Only the touched paths are stat'ed again and only new folders walked. Raises Doubt
    where a hard link could hide a write from the events (module `runs.watch`).
    """
    if touched.doubtful:
        raise Doubt(
            "a folder was made, or a file made and removed again: either may have held a "
            f"hard link to a file of the case ({sorted(touched.doubtful)[0]})"
        )
    root = str(before.root)
    after = Snapshot(
        root=before.root,
        stats=dict(before.stats),
        taken_ns=time.time_ns(),
        targets=dict(before.targets),
    )
    check = touched.written | touched.opened
    folders = touched.gone_folders | touched.new_folders
    if folders:
        # Everything the before-walk saw under a folder removed or replaced is looked at again.
        prefixes = tuple(f"{folder}/" for folder in folders)
        check |= {path for path in before.stats if path.startswith(prefixes)}
    limits = _Limits(MAX_ENTRIES, MAX_WALK_S)
    for path in sorted(check):  # parents before children
        if path in before.linked:
            raise Doubt(f"{path} has hard links")
        try:
            info = os.lstat(os.path.join(root, path))
        except (FileNotFoundError, NotADirectoryError):
            after.stats.pop(path, None)
            continue
        entry = stat_entry(info)
        if entry[0] != DIR and info.st_nlink > 1:
            raise Doubt(f"{path} has hard links")
        after.stats[path] = entry
        if entry[0] == SYMLINK:
            after.targets[path] = _readlink(os.path.join(root, path))
        if entry[0] == DIR and path in touched.new_folders:
            before_count = len(after.stats)
            _walk_into(after, os.path.join(root, path), path, limits, None)
            if after.linked:
                raise Doubt("a folder made during the run holds hard links")
            check |= set(list(after.stats)[before_count:])
    after.hashes = {path: sha for path, sha in before.hashes.items() if path not in check}
    forced = touched.written | {p for p in check if p not in before.stats}
    return after, check, forced


def file_sha256(path: str) -> str | None:
    """sha256 of a regular file's content; None when it is gone or not a regular file.

    O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO swapped in after the walk is neither
    followed nor waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return sha256_of_fd(fd)
    finally:
        os.close(fd)


def sha256_of_fd(fd: int) -> str | None:
    """sha256 of what an open descriptor holds, if it is a regular file; None otherwise."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        while True:
            chunk = os.read(fd, HASH_CHUNK)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)
    except OSError:
        return None


# -- comparing two walks ------------------------------------------------------------------


@dataclass
class Changes:
    """What differs between two walks of a case, as the record lists it."""

    created: list[dict[str, Any]] = field(default_factory=list)
    modified: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.created or self.modified or self.deleted)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tracked": True,
            "created": self.created,
            "modified": self.modified,
            "deleted": self.deleted,
        }
        if self.note:
            data["note"] = self.note
        return data


def untracked(reason: str) -> dict[str, Any]:
    """The record's `changes` when they were not tracked, saying why."""
    return {"tracked": False, "reason": reason}


def _describe(snapshot: Snapshot, path: str, entry: Stat) -> dict[str, Any]:
    kind = entry[0]
    found: dict[str, Any] = {
        "path": path,
        "type": kind,
        "size": entry[1] if kind != DIR else None,
        "sha256": snapshot.hashes.get(path) if kind == FILE else None,
        "mode": f"{entry[5]:04o}",
    }
    if kind == SYMLINK:
        found["target"] = snapshot.targets.get(path, "")
    return found


def compare(
    before: Snapshot,
    after: Snapshot,
    only: Iterable[str] | None = None,
    forced: Collection[str] = (),
) -> Changes:
    """The changes from `before` to `after` (two walks of one case, or of a case's copy
    before and after a preview), over every path or `only` those given. Hashes what may have
    changed in `after` (and the `forced` files whatever their stat); `after.hashes` ends up
    holding every hash known for it, for the cache."""
    found = Changes()
    paths = before.stats.keys() | after.stats.keys() if only is None else only
    for path in paths:
        old = before.stats.get(path)
        new = after.stats.get(path)
        if new is None:
            if old is not None:
                found.deleted.append(_describe(before, path, old))
        elif old is None or old[0] != new[0]:  # new, or a file became a folder and the like
            if new[0] == FILE:
                _hash_into(after, path)
            if old is not None:
                found.deleted.append(_describe(before, path, old))
            found.created.append(_describe(after, path, new))
        elif _modified(before, after, path, old, new, force=path in forced):
            entry = _describe(after, path, new)
            entry.update(
                size_before=old[1] if old[0] != DIR else None,
                sha256_before=before.hashes.get(path) if old[0] == FILE else None,
                mode_before=f"{old[5]:04o}",
            )
            found.modified.append(entry)
    for listed in (found.created, found.modified, found.deleted):
        listed.sort(key=lambda item: item["path"])
    if before.unhashed:
        found.note = (
            f"{before.unhashed} files were not hashed before the run (over the "
            f"{BEFORE_HASH_BUDGET_S:g} s budget): one rewritten with the same content shows as "
            "modified, without sha256_before"
        )
    return found


def _modified(
    before: Snapshot, after: Snapshot, path: str, old: Stat, new: Stat, *, force: bool
) -> bool:
    """Whether an entry of the same kind in both walks changed; hashes `after` as needed."""
    kind = new[0]
    if kind == FILE:
        known = before.hashes.get(path)
        if old == new and not force and not before.racy(old):
            if known is not None:
                after.hashes[path] = known
            return False
        sha = _hash_into(after, path)
        # Rewritten with the same content (and permissions) is not a change.
        return sha is None or sha != known or old[5] != new[5]
    if kind == SYMLINK:
        return before.targets.get(path) != after.targets.get(path) or old[5] != new[5]
    return old[5] != new[5]  # folders (and the like) change by their permissions only


def _hash_into(snapshot: Snapshot, path: str) -> str | None:
    sha = file_sha256(os.path.join(snapshot.root, path))
    if sha is not None:
        snapshot.hashes[path] = sha
        snapshot.hashed_files += 1
        snapshot.hashed_bytes += snapshot.stats[path][1]
    return sha
