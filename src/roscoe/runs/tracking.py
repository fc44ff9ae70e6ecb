"""Change tracking for one run: the walks of `runs.changes`, timed around the container.

The before-walk (with the hash cache) runs in a thread while the engine creates the
container, and must be done before the container starts; the after-walk runs in a thread
while the engine removes it. Most of the walking so hides behind engine calls the run
makes anyway. The hash cache of a case lives in <runs dir>/.hashes/, shared by the CLI and
the service (which sees the runs dir, not the rest of the data dir).

The walking modules (and hashlib, ctypes under them) are imported by the before-walk thread,
not when this module is: `roscoe run` imports them while the engine creates the container.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.config.atomic import write_atomic
from roscoe.runs.records import hand_over, runs_owner

if TYPE_CHECKING:
    from roscoe.runs import changes
    from roscoe.runs.watch import CaseWatch, Touched

log = logging.getLogger("roscoe.runs")

CACHE_DIR = ".hashes"  # in the runs dir; not a run id (ids start with a letter or digit)
# The cache is rewritten when a run had to hash more than this (see Tracker._worth_saving).
SAVE_FILES = 32
SAVE_BYTES = 16 << 20
OFF_REASON = "change tracking was turned off for this run (--no-track-changes or run.track_changes)"


def cache_file(case_key: str) -> Path:
    """Where the hash cache of a case is kept, by the case's path on the host."""
    import hashlib

    digest = hashlib.sha256(case_key.encode("utf-8", errors="surrogateescape")).hexdigest()
    return paths.runs_dir() / CACHE_DIR / f"{digest[:32]}.json"


def file_digest(path: Path) -> str | None:
    """sha256 of a file (the script as it was run), or None when unreadable."""
    from roscoe.runs import changes

    return changes.file_sha256(str(path))


class Tracker:
    """Walks `case_dir` before and after a run and gives the record's `changes`.

    `case_key` names the case for the hash cache (its path on the engine's host, the same
    for the CLI and the service). With `enabled` false, nothing is walked and the record
    says the changes were not tracked.
    """

    def __init__(self, case_dir: Path, case_key: str, *, enabled: bool = True):
        self.case_dir = case_dir
        self.walked = case_dir  # the case, or for a preview its copy
        self.enabled = enabled
        self.case: changes.Snapshot | None = None  # the case when the run started
        self._case_key = case_key
        self._cache_path: Path | None = None  # found by the before-walk
        self._cache_found = False
        self._before: changes.Snapshot | None = None
        self._after: changes.Snapshot | None = None
        self._found: changes.Changes | None = None
        self._reason: str | None = None if enabled else OFF_REASON
        self._watch: CaseWatch | None = None
        self._early: Touched | None = None  # writes seen between the before-walk and the start
        self._drained = False
        self._before_thread: threading.Thread | None = None
        self._after_thread: threading.Thread | None = None
        self.how = ""  # "events" or "walk": how the after-state was found (for the bench)

    # -- before the run ----------------------------------------------------------------------
    def begin(self) -> None:
        """Start the before-walk in the background (call before creating the container)."""
        if not self.enabled:
            return
        self._before_thread = threading.Thread(
            target=self._walk_before, name="roscoe-track-before", daemon=True
        )
        self._before_thread.start()

    def ready(self) -> None:
        """Wait for the before-walk: the script must not start before it is done."""
        if self._before_thread is not None:
            self._before_thread.join()
            self._before_thread = None
        if self._watch is not None and not self._drained:
            from roscoe.runs.watch import Unavailable

            self._drained = True
            try:
                # Our own hashing opened files; only writes by others count from here.
                self._early = self._watch.touched()
                self._early.opened.clear()
            except Unavailable:
                self._drop_watch()

    def preview(self, view: Path) -> None:
        """Walk the case, copy it to `view` (which must not exist) and walk the copy: the run
        then works on the copy, and its changes are the copy's. Synchronous, before the
        container is created; UsageError (2) when the case is too large to track."""
        from roscoe.errors import UsageError
        from roscoe.runs import changes, hashcache
        from roscoe.runs.casecopy import copy_case, seed_from_case

        self._watch = _watch_or_none()
        try:
            self._cache_path = cache_file(self._case_key)
            cache = hashcache.load_cache(self._cache_path)
            self._cache_found = bool(cache)
            case = changes.walk(self.case_dir)
            hashcache.fill_hashes(case, cache)
            copy_case(self.case_dir, view)
            copy = changes.walk(view, watch=self._watch)
        except changes.TooLarge as exc:
            self._drop_watch()
            raise UsageError(
                f"{exc}: too large to preview", hint="run it without --preview"
            ) from None
        except BaseException:
            self._drop_watch()
            raise
        seed_from_case(copy, case)
        self.case, self._before, self.walked = case, copy, view

    def _walk_before(self) -> None:
        from roscoe.runs import changes, hashcache

        self._watch = _watch_or_none()
        try:
            self._cache_path = cache_file(self._case_key)
            cache = hashcache.read_cache(self._cache_path)
            snapshot = changes.walk(self.case_dir, watch=self._watch)
            hashcache.fill_hashes(snapshot, cache or {})
            # A valid cache that had nothing to vouch for counts as found: a case without
            # files must not rewrite (and fsync) its cache on every run.
            self._cache_found = bool(cache) or (cache is not None and not snapshot.hashed_files)
            self._before = self.case = snapshot
        except changes.TooLarge as exc:
            self._reason = f"{exc}: too large to track"
        except Exception as exc:  # the run goes on; the record says why
            self._reason = f"the case could not be walked before the run: {exc}"
        if self._before is None:
            self._drop_watch()

    def _drop_watch(self, *, wait: bool = True) -> None:
        if self._watch is not None:
            if wait:
                self._watch.close()
            else:
                # Closing an inotify descriptor waits out a kernel grace period (10-20 ms):
                # it goes on in a thread of its own while the engine removes the container.
                threading.Thread(
                    target=self._watch.close, name="roscoe-track-unwatch", daemon=True
                ).start()
            self._watch = None

    # -- after the run -----------------------------------------------------------------------
    def end(self) -> None:
        """Start the after-walk in the background, once the container has stopped."""
        self.ready()
        if self._after_thread is not None or self._before is None:
            return
        self._after_thread = threading.Thread(
            target=self._walk_after, name="roscoe-track-after", daemon=True
        )
        self._after_thread.start()

    def _walk_after(self) -> None:
        before = self._before
        if before is None:
            return
        from roscoe.runs import changes
        from roscoe.runs.watch import Unavailable

        try:
            if self._watch is not None:
                try:
                    self._found = self._from_events(before, self._watch)
                    self.how = "events"
                    return
                except (Unavailable, changes.Doubt) as exc:
                    log.debug("walking all of the case after the run: %s", exc)
            self._after = changes.walk(self.walked)
            self._found = changes.compare(before, self._after)
            self.how = "walk"
        except changes.TooLarge as exc:
            self._reason = f"{exc} after the run: too large to track"
        except Exception as exc:  # the record says why
            self._reason = f"the case could not be walked after the run: {exc}"
        finally:
            self._drop_watch(wait=False)

    def _from_events(self, before: changes.Snapshot, watch: CaseWatch) -> changes.Changes:
        from roscoe.runs import changes

        touched = watch.touched(into=self._early)
        after, check, forced = changes.rewalk(before, touched)
        found = changes.compare(before, after, only=check, forced=forced)
        self._after = after
        return found

    def result(self) -> dict[str, Any]:
        """The record's `changes`: what the run created, modified and deleted, or why not."""
        self.end()
        if self._after_thread is not None:
            self._after_thread.join()
        if self._before is None or self._after is None or self._found is None:
            from roscoe.runs import changes

            return changes.untracked(self._reason or "the case could not be walked")
        if self.walked == self.case_dir:
            if self._worth_saving(self._before, self._after):
                self._save_cache(self._after)
        elif self.case is not None and self._worth_saving(self.case, self._after):
            self._save_cache(self.case)  # a preview leaves the case as it was
        return self._found.to_json()

    def _worth_saving(self, before: changes.Snapshot, after: changes.Snapshot) -> bool:
        """Rewrite the cache only when this run had to hash enough that the next would too;
        the few files a run changes are cheaper to hash again than the cache to rewrite."""
        files = before.hashed_files + after.hashed_files
        size = before.hashed_bytes + after.hashed_bytes
        return not self._cache_found or files > SAVE_FILES or size > SAVE_BYTES

    def _save_cache(self, snapshot: changes.Snapshot) -> None:
        """Keep the hashes for the next run of this case; a cache that cannot be written
        only costs the next run some hashing."""
        from roscoe.runs import hashcache

        if self._cache_path is None:  # the before-walk failed before it was known
            return
        try:
            folder = paths.ensure_dir(self._cache_path.parent)
            hand_over(folder)  # under a root roscoe, the service must write it too
            text = hashcache.cache_text(snapshot)
            write_atomic(self._cache_path, text, mode=0o600, owner=runs_owner())
        except OSError as exc:
            log.debug("could not save the hash cache %s: %s", self._cache_path, exc)


def _watch_or_none() -> CaseWatch | None:
    from roscoe.runs.watch import CaseWatch, Unavailable

    try:
        return CaseWatch()
    except Unavailable:
        return None
