"""Landing a preview's changes in its case: all of them, or none on a conflict.

Shared by `roscoe runs apply` (on the host) and the service's apply container
(`runs.apply_main`). Every path of the case is reached through folder descriptors opened
without following a symlink, so nothing outside the case is ever written, whatever the case
holds by the time the changes land.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from roscoe.errors import OperationFailed
from roscoe.runs import changes

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def items(found: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The entries of one list of a record's `changes` (a record is a file: anything may be
    in it; an entry without a path is an error, never skipped silently)."""
    listed = found.get(key) or []
    if not isinstance(listed, list) or not all(
        isinstance(item, dict) and isinstance(item.get("path"), str) for item in listed
    ):
        raise OperationFailed(f"the record's changes.{key} is malformed; nothing was applied")
    return listed


def touched(found: dict[str, Any]) -> set[str]:
    keys = ("created", "modified", "deleted")
    return {item["path"] for key in keys for item in items(found, key)}


class Conflict(OperationFailed):
    """The case changed where the preview would write: nothing was applied (exit 1)."""

    def __init__(self, run_id: str, conflicts: list[str]) -> None:
        shown = "; ".join(conflicts[:10])
        more = f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""
        super().__init__(
            f"run {run_id}: the case changed since the run started where the preview would "
            f"write, so nothing was applied: {shown}{more}",
            hint=f"look at those files, then `roscoe runs discard {run_id}` and run again",
        )
        self.conflicts = conflicts


class _NotAFolder(Exception):
    """A path component is a symlink or a file where a folder should be."""


@contextlib.contextmanager
def _folder(root_fd: int, parts: list[str]) -> Iterator[int]:
    """An fd of the folder `parts` under `root_fd`, opened without following any symlink."""
    opened: list[int] = []
    current = root_fd
    try:
        for part in parts:
            try:
                current = os.open(part, _DIR_FLAGS, dir_fd=current)
            except FileNotFoundError:
                raise
            except OSError as exc:  # ELOOP (a symlink), ENOTDIR (a file)
                raise _NotAFolder(part) from exc
            opened.append(current)
        yield current
    finally:
        for fd in reversed(opened):
            os.close(fd)


def _split(path: str) -> tuple[list[str], str]:
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise OperationFailed(f"the preview's record names an unsafe path: {path!r}")
    return parts[:-1], parts[-1]


def _entry_at(root_fd: int, path: str) -> changes.Stat | None:
    """The entry at `path` under the case, or None when absent (or behind a symlink)."""
    folders, name = _split(path)
    try:
        with _folder(root_fd, folders) as parent:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError, _NotAFolder):
        return None
    return changes.stat_entry(info)


def _sha_at(root_fd: int, path: str) -> str | None:
    folders, name = _split(path)
    try:
        with _folder(root_fd, folders) as parent:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=parent)
    except (OSError, _NotAFolder):
        return None
    try:
        return changes.sha256_of_fd(fd)
    finally:
        os.close(fd)


def conflicts(
    root_fd: int, case_dir: Path, found: dict[str, Any], base: dict[str, Any]
) -> list[str]:
    """One line per path the preview would touch whose state in the case is no longer the
    one the run started from, or that this user may not change."""
    problems: list[str] = []
    created_dirs = {i["path"] for i in items(found, "created") if i.get("type") == changes.DIR}
    for path in sorted(base):
        then, now = base[path], _entry_at(root_fd, path)
        if then is None:
            if now is not None and not (now[0] == changes.DIR and path in created_dirs):
                problems.append(f"{path} (made in the case since)")
        elif now is None:
            problems.append(f"{path} (gone from the case since)")
        elif not _same(root_fd, path, then, now):
            problems.append(f"{path} (changed in the case since)")
    return [
        *problems,
        *_lost_folders(root_fd, found, created_dirs),
        *_new_in_removed_folders(root_fd, found),
        *_unwritable(root_fd, case_dir, found),
    ]


def _lost_folders(root_fd: int, found: dict[str, Any], created_dirs: set[str]) -> list[str]:
    """Folders a change lands in that are no longer folders of the case (removed, or swapped
    for a symlink or a file), unless the preview makes them itself."""
    problems: list[str] = []
    for parent in sorted({path.rpartition("/")[0] for path in touched(found)} - {""}):
        if parent in created_dirs:
            continue
        try:
            with _folder(root_fd, parent.split("/")):
                pass
        except (FileNotFoundError, NotADirectoryError, _NotAFolder):
            problems.append(f"{parent}/ (no longer a folder of the case)")
    return problems


def _same(root_fd: int, path: str, then: list[Any], now: changes.Stat) -> bool:
    if tuple(then[:6]) == now:
        return True
    if then[0] != now[0] or then[5] != now[5]:
        return False
    if now[0] == changes.DIR:
        return True  # a folder's own stat moves with its entries, which are checked apart
    return now[0] == changes.FILE and then[6] is not None and _sha_at(root_fd, path) == then[6]


def _new_in_removed_folders(root_fd: int, found: dict[str, Any]) -> list[str]:
    """Entries made in the case since the run in a folder the preview removes."""
    removed = {item["path"] for item in items(found, "deleted")}
    problems: list[str] = []
    for item in items(found, "deleted"):
        if item.get("type") != changes.DIR:
            continue
        folders, name = _split(item["path"])
        try:
            with _folder(root_fd, [*folders, name]) as folder:
                names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError, _NotAFolder):
            continue  # reported as a conflict of its own
        problems += [
            f"{item['path']}/{entry} (made in the case since, in a folder the preview removes)"
            for entry in names
            if f"{item['path']}/{entry}" not in removed
        ]
    return problems


def _unwritable(root_fd: int, case_dir: Path, found: dict[str, Any]) -> list[str]:
    """Folders of the case where a change would land but this user may not write."""
    problems: list[str] = []
    for parent in sorted({path.rpartition("/")[0] for path in touched(found)}):
        if not parent:
            ok = os.access(case_dir, os.W_OK | os.X_OK)
        else:
            above, name = _split(parent)
            try:
                with _folder(root_fd, above) as fd:
                    if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        continue  # a conflict of its own
                    ok = os.access(name, os.W_OK | os.X_OK, dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError, _NotAFolder):
                continue  # made by the preview itself, or reported as a conflict
        if not ok:
            problems.append(f"{parent or '.'}/ (this user may not write there)")
    return problems


def check_copy(copy_dir: Path, found: dict[str, Any]) -> None:
    """The copy holds exactly what the record lists; OperationFailed otherwise."""
    for key in ("created", "modified"):
        for item in items(found, key):
            path, kind = item["path"], item.get("type")
            _split(path)
            where = os.path.join(copy_dir, path)
            if kind == changes.FILE:
                ok = changes.file_sha256(where) == item.get("sha256")
            elif kind == changes.SYMLINK:
                ok = os.path.islink(where) and os.readlink(where) == item.get("target")
            elif kind == changes.DIR:
                ok = os.path.isdir(where) and not os.path.islink(where)
            else:
                raise OperationFailed(
                    f"{path} is a {kind}: a preview applies files, folders and symlinks only"
                )
            if not ok:
                raise OperationFailed(
                    f"the preview's copy of {path} is not what the run recorded; nothing was "
                    "applied",
                    hint="discard this preview and run again",
                )


def apply_changes(
    case_dir: Path, copy_dir: Path, found: dict[str, Any], base: dict[str, Any], run_id: str
) -> int:
    """Land the recorded changes in the case: all of them, or (on a conflict) none.

    Every path is reached through folder descriptors opened without following a symlink,
    so nothing outside the case is written, whatever the case holds now. Files are written
    under a temporary name and renamed over their target. Returns how many entries changed.
    """
    check_copy(copy_dir, found)
    root_fd = os.open(case_dir, _DIR_FLAGS)
    try:
        problems = conflicts(root_fd, case_dir, found, base)
        if problems:
            raise Conflict(run_id, problems)
        deleted = sorted(items(found, "deleted"), key=lambda i: -i["path"].count("/"))
        for item in deleted:
            _remove(root_fd, item)
        landing = [*items(found, "created"), *items(found, "modified")]
        for item in sorted(landing, key=lambda i: (i["path"].count("/"), i["path"])):
            _land(root_fd, copy_dir, item)
        return len(deleted) + len(landing)
    finally:
        os.close(root_fd)


def _remove(root_fd: int, item: dict[str, Any]) -> None:
    folders, name = _split(str(item["path"]))
    with _folder(root_fd, folders) as parent, contextlib.suppress(FileNotFoundError):
        if item.get("type") == changes.DIR:
            os.rmdir(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)


def _land(root_fd: int, copy_dir: Path, item: dict[str, Any]) -> None:
    path, kind = str(item["path"]), item.get("type")
    folders, name = _split(path)
    source = os.path.join(copy_dir, path)
    info = os.lstat(source)
    mode = stat.S_IMODE(info.st_mode)
    with _folder(root_fd, folders) as parent:
        if kind == changes.DIR:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            try:
                _own(fd, info)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            return
        temporary = f".roscoe-apply-{os.getpid()}-{name}"[:250]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=parent)
        if kind == changes.SYMLINK:
            os.symlink(os.readlink(source), temporary, dir_fd=parent)
            if os.getuid() == 0:
                os.chown(temporary, info.st_uid, info.st_gid, dir_fd=parent, follow_symlinks=False)
        else:
            _copy_file(source, parent, temporary, info)
        os.rename(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)


def _copy_file(source: str, parent: int, temporary: str, info: os.stat_result) -> None:
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(temporary, flags, 0o600, dir_fd=parent)
        try:
            while True:
                chunk = os.read(src, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
            _own(dst, info)
            os.fchmod(dst, stat.S_IMODE(info.st_mode))
            os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _own(fd: int, info: os.stat_result) -> None:
    """Under root, what the run's user wrote stays that user's (as after a normal run)."""
    if os.getuid() == 0:
        os.fchown(fd, info.st_uid, info.st_gid)
