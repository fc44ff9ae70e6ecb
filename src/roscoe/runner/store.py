"""What roscoe remembers about the runner container between commands, and the start lock.

- the ID of the container it started (paths.server_id_file): with the name and the labels,
  it tells our container from a stranger's with the same name;
- the settings of the last start (paths.server_settings_file), so `restart` starts the same
  container; the values of -e variables go to a separate 0600 file because they may be secrets;
- a lock (paths.server_lock_file) so two starts at the same moment end with one container.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roscoe.config import paths
from roscoe.config.atomic import write_atomic
from roscoe.errors import OperationFailed


@dataclass
class StartSettings:
    """What `roscoe server start` was asked for (flags already resolved)."""

    image: str | None = None  # --image, None when chosen by settings/pinned
    use_local_image: bool = False
    pull: str = "missing"
    port: int | None = None
    workspace: str | None = None
    log_level: str | None = None  # --log-level, None: the setting service.log_level
    env: dict[str, str] = field(default_factory=dict)  # values: never written to settings.json

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = sorted(self.env)  # names only
        return data


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (config.atomic)."""
    paths.ensure_dir(path.parent)
    write_atomic(path, text, mode=0o600)


def read_container_id() -> str | None:
    try:
        text = paths.server_id_file().read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def write_container_id(container_id: str) -> None:
    _write_private(paths.server_id_file(), container_id + "\n")


def clear_container_id() -> None:
    with contextlib.suppress(FileNotFoundError):
        paths.server_id_file().unlink()


def save_settings(settings: StartSettings) -> None:
    _write_private(paths.server_settings_file(), json.dumps(settings.to_json(), indent=2) + "\n")
    _write_private(paths.server_env_file(), json.dumps(settings.env) + "\n")


def load_settings() -> StartSettings | None:
    """The settings of the last start, or None if roscoe never started a runner here."""
    try:
        data = json.loads(paths.server_settings_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        values = json.loads(paths.server_env_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        values = {}
    names = data.get("env") or []
    return StartSettings(
        image=data.get("image"),
        use_local_image=bool(data.get("use_local_image")),
        pull=str(data.get("pull") or "missing"),
        port=data.get("port"),
        workspace=data.get("workspace"),
        log_level=data.get("log_level"),
        env={name: str(values[name]) for name in names if name in values},
    )


@contextlib.contextmanager
def start_lock(deadline_s: float = 120.0, poll_s: float = 0.05) -> Iterator[None]:
    """Hold the server lock: one start/stop/restart at a time on this data dir."""
    import fcntl

    path = paths.server_lock_file()
    paths.ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        give_up = time.monotonic() + deadline_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= give_up:
                    raise OperationFailed(
                        f"another roscoe is starting or stopping the runner (lock {path} "
                        f"held for {deadline_s:.0f} s)",
                        hint="wait for it to finish, then try again",
                    ) from None
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
