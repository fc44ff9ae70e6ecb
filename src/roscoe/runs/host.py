"""Facts about the host that decide how every container roscoe creates is set up.

Shared by one-shot runs (`runs.execute`) and the runner container (`runner.layout`,
`runner.lifecycle`), so the rules live in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

UNPRIVILEGED_UID = 1000  # the image's `taskrunner`, used when roscoe itself runs as root


def container_user() -> tuple[int, int]:
    """The uid:gid containers run as: the invoking user's, so files they write are the user's;
    taskrunner's when roscoe runs as root. Never root inside."""
    uid = os.getuid()
    if uid == 0:
        return UNPRIVILEGED_UID, UNPRIVILEGED_UID
    return uid, os.getgid()


def selinux_enforcing() -> bool:
    """True on an SELinux host in enforcing mode: bind mounts then need relabelling (:z)."""
    try:
        return Path("/sys/fs/selinux/enforce").read_text().strip() == "1"
    except OSError:
        return False


def user_name() -> str:
    """The name of the user running roscoe, by the real uid (not $USER); the uid when the
    uid has no name (in a container, say). For `requested_by` in run records."""
    import pwd

    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
