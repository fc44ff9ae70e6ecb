"""Which mount a path is on, from /proc/self/mountinfo: its file system, and for FUSE, who
mounted it and whether anyone else may read it (`allow_other`).

A FUSE mount without allow_other is readable by the user who mounted it and nobody else, not
even root (the kernel refuses every other uid before the file system is asked). So a bucket
mounted by a user is invisible to a rootful engine, and one mounted by root is invisible to
the uid a run has inside its container.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str  # "ext4", "fuse.s3fs", "fuse.gcsfuse", "fuse" ...
    source: str
    options: tuple[str, ...]  # per-mount options (rw, nosuid ...)
    super_options: tuple[str, ...]  # the file system's (for FUSE: user_id=, allow_other ...)

    @property
    def fuse(self) -> bool:
        return self.fs_type in ("fuse", "fuseblk") or self.fs_type.startswith("fuse.")

    @property
    def fuse_name(self) -> str | None:
        """What serves a FUSE mount: 's3fs', 'gcsfuse' (the subtype), else its source."""
        if not self.fuse:
            return None
        _, dot, subtype = self.fs_type.partition(".")
        return subtype if dot and subtype else self.source

    @property
    def allow_other(self) -> bool:
        return "allow_other" in self.super_options or "allow_other" in self.options

    @property
    def mount_uid(self) -> int | None:
        """The uid that made a FUSE mount (user_id=), None when not said."""
        for option in self.super_options:
            key, _, value = option.partition("=")
            if key == "user_id" and value.isdigit():
                return int(value)
        return None

    def readable_by(self, uid: int) -> bool:
        """Whether the kernel lets `uid` into this mount at all (FUSE's allow_other rule)."""
        if not self.fuse or self.allow_other:
            return True
        return self.mount_uid is None or self.mount_uid == uid

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = list(self.options)
        data["super_options"] = list(self.super_options)
        data.update(
            fuse=self.fuse,
            fuse_name=self.fuse_name,
            allow_other=self.allow_other if self.fuse else None,
            mount_uid=self.mount_uid,
        )
        return data


def _unescape(text: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as \040 \011 \012 \134.
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[Mount]:
    """Every line of a mountinfo file; lines that do not parse are skipped."""
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        head, tail = before.split(), after.split()
        if len(head) < 6 or len(tail) < 2:
            continue
        mounts.append(
            Mount(
                mount_point=_unescape(head[4]),
                fs_type=tail[0],
                source=_unescape(tail[1]),
                options=tuple(head[5].split(",")),
                super_options=tuple(tail[2].split(",")) if len(tail) > 2 else (),
            )
        )
    return mounts


def mount_of(path: Path | str, mounts: list[Mount] | None = None) -> Mount | None:
    """The mount `path` lies on: the deepest mount point above it (the last one mounted there)."""
    if mounts is None:
        try:
            mounts = parse_mountinfo(MOUNTINFO.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None
    # realpath never needs to read the path itself: it works on a mount nobody may enter.
    where = os.path.realpath(path)
    found: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and (found is None or len(point) >= len(found.mount_point)):
            found = mount
    return found
