"""The one way roscoe writes a file that must never be seen half-written.

The config file, the service token, run records and what roscoe remembers about the runner
all go through `write_atomic`: a temporary file in the same folder, created with its final
mode (no moment with wider permissions) and owner, written and fsynced, renamed over the
target, and the folder fsynced so that the rename itself survives a crash. A reader sees the
old file or the new one, whole; a crash leaves the old one, never a part of the new.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    replace: bool = True,
) -> bool:
    """Write `data` (str: UTF-8) to `path` atomically; see the module docstring.

    `mode` is the file's mode exactly (the umask does not narrow it); `owner` (uid, gid)
    chowns it before it appears, when roscoe runs as root. With replace=False an existing file
    is left as it is (the new one appears only where there was none, with link()) and False
    is returned; otherwise True. Raises OSError; the temporary file never stays behind.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    folder = path.parent
    temporary = folder / f".{path.name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask narrowed the mode os.open gave it
            if owner is not None:
                os.fchown(fd, *owner)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # refuses to replace what is there
            except FileExistsError:
                return False
        _sync_folder(folder)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _sync_folder(folder: Path) -> None:
    """fsync the folder, so that a rename in it is on disk (not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
