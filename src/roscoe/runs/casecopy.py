"""A copy of a case for a preview run (`runs.preview`), and the hashes it inherits.

`cp -a --reflink=auto` clones where the file system can (Btrfs, XFS with reflink: near
free) and copies elsewhere (the case's size in time and disk); it keeps modes, times,
symlinks, hard links and, under root, owners, so the script sees the case as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from roscoe.errors import OperationFailed
from roscoe.runs import changes


def copy_case(case_dir: Path, target: Path) -> None:
    """Copy the case into `target` (which must not exist), keeping modes, times, symlinks,
    hard links and, under root, owners; copy-on-write where the file system allows."""
    if sys.platform.startswith("linux") and shutil.which("cp"):
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", str(case_dir), str(target)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return
        remove_tree(target)
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OperationFailed(
            f"could not copy the case for the preview: {lines[0] if lines else 'cp failed'}",
            hint="check the free space in roscoe's data dir and that the case is readable",
        )
    try:
        shutil.copytree(case_dir, target, symlinks=True)
    except (OSError, shutil.Error) as exc:
        remove_tree(target)
        raise OperationFailed(f"could not copy the case for the preview: {exc}") from exc


def seed_from_case(copy: changes.Snapshot, case: changes.Snapshot) -> None:
    """Give the copy's files the hashes known for the case where the copy kept the file's
    kind, size, mtime and mode (cp -a keeps them); hash the others."""
    for path, entry in copy.stats.items():
        if entry[0] != changes.FILE:
            continue
        original = case.stats.get(path)
        sha = case.hashes.get(path)
        if sha is not None and original is not None and _kept(original, entry):
            copy.hashes[path] = sha
        else:
            found = changes.file_sha256(os.path.join(copy.root, path))
            if found is not None:
                copy.hashes[path] = found


def _kept(original: changes.Stat, copied: changes.Stat) -> bool:
    return (original[0], original[1], original[2], original[5]) == (
        copied[0],
        copied[1],
        copied[2],
        copied[5],
    )


def remove_tree(path: Path) -> None:
    """Remove a folder the run's user may have left read-only inside; absent is fine."""

    def writable_then_retry(function: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            parent = os.path.dirname(name)
            os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, stat.S_IMODE(os.lstat(name).st_mode) | stat.S_IRWXU)
            function(name)

    if path.is_dir() and not path.is_symlink():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=writable_then_retry)
        else:
            shutil.rmtree(path, onerror=writable_then_retry)
    elif path.exists() or path.is_symlink():
        path.unlink()
