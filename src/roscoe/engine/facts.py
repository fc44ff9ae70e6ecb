"""What an engine is like beyond its name and version: rootless or not, which cgroup
controllers its containers get, which runtimes it has.

Podman answers /info in 0.3 to 0.9 s, far more than a run may cost, so these facts are read
only when a run needs them (a rootless Podman, gVisor) and then kept: by the Engine for its
life, by a long-lived caller (the execution service) for its own, and on disk for the CLI,
keyed by the engine socket's identity. A restarted engine service makes a new socket (a new
inode), so a stale entry is never used.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from roscoe.engine.protocols import EngineFacts

log = logging.getLogger("roscoe.engine")


def facts_from_json(data: Mapping[str, Any]) -> EngineFacts:
    """Facts as the cache keeps them; anything malformed reads as not said."""
    controllers = data.get("cgroup_controllers")
    return EngineFacts(
        rootless=_bool_or_none(data.get("rootless")),
        cgroup_version=_str_or_none(data.get("cgroup_version")),
        cgroup_controllers=(
            tuple(str(c) for c in controllers) if isinstance(controllers, list) else None
        ),
        default_runtime=_str_or_none(data.get("default_runtime")),
        runtimes=tuple(str(r) for r in data.get("runtimes") or () if isinstance(r, str)),
    )


def _bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def podman_facts(info: Mapping[str, Any]) -> EngineFacts:
    """From Podman's own GET /libpod/info (the compat /info does not say rootless)."""
    host = info.get("host") or {}
    security = host.get("security") or {}
    runtime = (host.get("ociRuntime") or {}).get("name")
    controllers = host.get("cgroupControllers")
    return EngineFacts(
        rootless=_bool_or_none(security.get("rootless")),
        cgroup_version=_str_or_none(host.get("cgroupVersion")),
        cgroup_controllers=(
            tuple(str(c) for c in controllers) if isinstance(controllers, list) else None
        ),
        default_runtime=_str_or_none(runtime),
        runtimes=(runtime,) if isinstance(runtime, str) and runtime else (),
    )


def docker_facts(info: Mapping[str, Any]) -> EngineFacts:
    """From Docker's GET /info."""
    options = " ".join(str(o) for o in info.get("SecurityOptions") or [])
    version = info.get("CgroupVersion")
    return EngineFacts(
        rootless="rootless" in options,
        cgroup_version=f"v{version}" if version else None,
        cgroup_controllers=None,
        default_runtime=_str_or_none(info.get("DefaultRuntime")),
        runtimes=tuple(sorted(info.get("Runtimes") or {})),
    )


def socket_identity(path: str) -> str | None:
    """The socket file's inode and change time: a new engine service makes a new socket."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return f"{found.st_dev}:{found.st_ino}:{found.st_ctime_ns}"


def socket_owner(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


class FactsCache:
    """The facts of engine sockets, in one small JSON file (0600) in the data dir.

    Best effort: a cache that cannot be read or written only costs the engine's answer again.
    """

    def __init__(self, path: Path):
        self.path = path

    def get(self, socket_path: str) -> EngineFacts | None:
        identity = socket_identity(socket_path)
        if identity is None:
            return None
        entry = self._read().get(socket_path)
        if not isinstance(entry, dict) or entry.get("identity") != identity:
            return None
        facts = entry.get("facts")
        return facts_from_json(facts) if isinstance(facts, dict) else None

    def put(self, socket_path: str, facts: EngineFacts) -> None:
        identity = socket_identity(socket_path)
        if identity is None:
            return
        entries = self._read()
        entries[socket_path] = {"identity": identity, "facts": asdict(facts)}
        # Never creates its folder (the data dir, made private by whoever makes it): until
        # it exists, the facts are asked for again.
        try:
            fd, temp = tempfile.mkstemp(prefix=".facts-", dir=self.path.parent)  # 0600
        except OSError as exc:
            log.debug("engine facts not cached in %s: %s", self.path, exc)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entries, out)
            os.replace(temp, self.path)
        except OSError as exc:
            log.debug("engine facts not cached in %s: %s", self.path, exc)
            Path(temp).unlink(missing_ok=True)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
