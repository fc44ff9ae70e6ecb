"""Which paths of a case were touched during a run, from the kernel (Linux inotify).

Watching every folder of the case while the script runs tells the after-walk where to look:
it re-stats the touched paths and walks only folders moved in, instead of every file again.
Any doubt sends it back to the full walk: no inotify (another OS, a limit reached), a queue
overflow, a touched file with hard links, a file made and unlinked again, or a folder made
during the run (a write through a hard link is reported under that link's name only, and a
new folder is not watched). Files opened during the run count as touched, so a write through
a memory map (which raises no modify event) is still looked at.

Standard library only: inotify through ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from dataclasses import dataclass, field

IN_ACCESS = 0x001
IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_OPEN = 0x020
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# A write, a change of metadata, or a name coming or going: the entry must be hashed again.
WRITES = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
WRITES |= IN_DELETE
WATCHED = WRITES | IN_OPEN | IN_DELETE_SELF | IN_MOVE_SELF
_HEADER = struct.Struct("iIII")


class Unavailable(Exception):
    """inotify cannot watch this case: the full after-walk is needed."""


@dataclass
class Touched:
    """What the events said, as paths relative to the case."""

    written: set[str] = field(default_factory=set)  # written, created, removed, renamed, chmod
    opened: set[str] = field(default_factory=set)  # only opened: compared by their stat
    new_folders: set[str] = field(default_factory=set)  # created or moved in: walk them whole
    gone_folders: set[str] = field(default_factory=set)  # removed or moved away
    appeared: set[str] = field(default_factory=set)  # files created or moved in
    # Files that appeared and were then unlinked, and folders made during the run (whose
    # own events nobody watched): any may have held a hard link to another file of the
    # case, written through and removed, which the events never name.
    doubtful: set[str] = field(default_factory=set)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The symbols already loaded in this process, libc's among them: finding libc by
        # name (ctypes.util.find_library) runs ldconfig in a child process on every run.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


class CaseWatch:
    """inotify watches on every folder of one case; `touched()` reads what happened."""

    def __init__(self) -> None:
        libc = _libc()
        if libc is None:
            raise Unavailable("inotify is not available on this system")
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise Unavailable(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self._libc = libc
        self._fd = fd
        self._folders: dict[int, str] = {}  # watch descriptor -> folder ("" is the case)
        self.broken: str | None = None  # why the watch cannot vouch for the case

    def add(self, path: str, relative: str) -> None:
        """Watch one folder (before it is listed, so nothing between is missed)."""
        if self.broken is not None:
            return
        wd = self._libc.inotify_add_watch(
            self._fd, os.fsencode(path), WATCHED | IN_ONLYDIR | IN_DONT_FOLLOW
        )
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR):
                return  # gone meanwhile: the walk will not find it either
            self.broken = f"inotify_add_watch: {os.strerror(code)}"  # e.g. the watch limit
            return
        self._folders[wd] = relative

    def touched(self, into: Touched | None = None) -> Touched:
        """Every event since the last call, as paths (added to `into`, which must hold the
        earlier ones); Unavailable when the kernel dropped some, or when a folder could not
        be watched."""
        if self.broken is not None:
            raise Unavailable(self.broken)
        found = Touched() if into is None else into
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return found
            if not data:
                return found
            self._parse(data, found)

    def _parse(self, data: bytes, found: Touched) -> None:
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size : offset + _HEADER.size + length]
            offset += _HEADER.size + length
            if mask & IN_Q_OVERFLOW:
                raise Unavailable("the kernel's event queue overflowed")
            folder = self._folders.get(wd)
            if folder is None or mask & IN_IGNORED:
                continue
            name = os.fsdecode(raw.rstrip(b"\0"))
            if not name:  # about the watched folder itself
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF) and folder:
                    found.written.add(folder)
                elif folder:
                    found.opened.add(folder)
                continue
            _note(found, f"{folder}/{name}" if folder else name, mask)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _note(found: Touched, path: str, mask: int) -> None:
    """File one event about `path` (an entry of a watched folder)."""
    if mask & WRITES:
        found.written.add(path)
    else:
        found.opened.add(path)
    if mask & IN_ISDIR:
        if mask & IN_CREATE:
            found.doubtful.add(path)
        if mask & (IN_CREATE | IN_MOVED_TO):
            found.new_folders.add(path)
        if mask & (IN_DELETE | IN_MOVED_FROM):
            found.gone_folders.add(path)
        return
    if mask & (IN_CREATE | IN_MOVED_TO):
        found.appeared.add(path)
    if mask & IN_DELETE and path in found.appeared:
        found.doubtful.add(path)
