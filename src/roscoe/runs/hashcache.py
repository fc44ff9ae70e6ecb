"""The hash cache of a case: the sha256 of each of its files with the stat it had then, so
that a run's before-walk hashes only the files whose stat moved since (runs.changes).

Kept in the runs dir, one file per case (runs.tracking); it is only a cache: unreadable or
of another version, it is ignored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from roscoe.runs import changes

# [size, mtime_ns, ctime_ns, inode, sha256] by path, as stored (checked where it is used)
CacheEntry = list[Any]


def load_cache(where: Path) -> dict[str, CacheEntry]:
    """The cache file's entries; {} when absent or unreadable (it is only a cache)."""
    found = read_cache(where)
    return {} if found is None else found


def read_cache(where: Path) -> dict[str, CacheEntry] | None:
    """The cache file's entries (maybe none: a case without files); None when the file is
    absent, unreadable or of another version."""
    import json

    try:
        data = json.loads(where.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return None
    files = data.get("files")
    return files if isinstance(files, dict) else None


def cache_text(snapshot: changes.Snapshot) -> bytes:
    """A cache file vouching for every hashed, non-racy file of `snapshot`."""
    import json

    now = time.time_ns()
    files: dict[str, list[Any]] = {}
    for path, sha in snapshot.hashes.items():
        entry = snapshot.stats.get(path)
        if (
            entry is None
            or entry[0] != changes.FILE
            or max(entry[2], entry[3]) >= now - changes.RACY_NS
        ):
            continue
        files[path] = [entry[1], entry[2], entry[3], entry[4], sha]
    text = json.dumps({"version": CACHE_VERSION, "files": files}, separators=(",", ":"))
    return text.encode("utf-8", errors="surrogateescape")


CACHE_VERSION = 1
CACHE_FIELDS = 5


def fill_hashes(
    snapshot: changes.Snapshot,
    cache: dict[str, CacheEntry],
    *,
    budget_s: float | None = None,
) -> None:
    """Know the hash of every file in `snapshot`: from the cache where the stat matches
    and the timestamps are not racy, else by hashing, until `budget_s` runs out."""
    deadline = time.monotonic() + (changes.BEFORE_HASH_BUDGET_S if budget_s is None else budget_s)
    root = str(snapshot.root)
    hashes = snapshot.hashes
    recent = snapshot.taken_ns - changes.RACY_NS
    unknown: list[str] = []
    for path, entry in snapshot.stats.items():
        if entry[0] != changes.FILE:
            continue
        cached = cache.get(path)
        if (
            cached is not None
            and len(cached) == CACHE_FIELDS
            and cached[0] == entry[1]
            and cached[1] == entry[2]
            and cached[2] == entry[3]
            and cached[3] == entry[4]
            and entry[2] < recent
            and entry[3] < recent
            and isinstance(cached[4], str)
        ):
            hashes[path] = cached[4]
        else:
            unknown.append(path)
    for index, path in enumerate(unknown):
        if time.monotonic() > deadline:
            snapshot.unhashed = len(unknown) - index
            return
        sha = changes.file_sha256(os.path.join(root, path))
        if sha is not None:
            hashes[path] = sha
            snapshot.hashed_files += 1
            snapshot.hashed_bytes += snapshot.stats[path][1]
