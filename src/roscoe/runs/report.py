"""What the launcher (runs/launcher.py) reports from inside a run's container, read back on
the host: how the script ended and what it used.

The report comes from a folder the container can write (the run's own `launcher/`, mounted at
REPORT_MOUNT), so it is read as untrusted input: no symlinks, a regular file of bounded size,
every field checked. A script could write its own report there; it would only lie about
itself (the exit code roscoe gives is the container's, never the report's).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("roscoe.runs")

REPORT_DIR = "launcher"  # in the run's folder
REPORT_MOUNT = "/run/roscoe"  # where the run's container sees it
REPORT_FILE = "report.json"
STARTED_FILE = "started"
HOSTS_FILE = "hosts"  # the container's /etc/hosts (runs/plan.py), mounted read-only
MAX_REPORT_BYTES = 4096


@dataclass(frozen=True)
class LaunchReport:
    exit: int | None  # the script's exit code, when it exited
    signal: int | None  # the signal that ended it, when one did
    user_s: float | None
    system_s: float | None
    max_rss_bytes: int | None
    oom_kills: int | None  # kills at the memory limit in the run; None: not known here
    stopped: str | None  # "backstop" or "asked" (roscoe's timeout or cancel)


def make_report_dir(run_dir: Path, hosts: str | None = None) -> Path:
    """The folder the launcher writes into: anyone may write it, for the container's user is
    whoever the engine makes it; the run's folder above (0700) keeps every other host user out.
    `hosts`: the container's /etc/hosts, written there too.
    """
    where = run_dir / REPORT_DIR
    where.mkdir()
    os.chmod(where, 0o777)  # noqa: S103 - reachable only through the 0700 run folder
    if hosts is not None:
        (where / HOSTS_FILE).write_text(hosts, encoding="utf-8")
        os.chmod(where / HOSTS_FILE, 0o644)  # whatever the umask: any container user reads it
    return where


def launcher_started(report_dir: Path) -> bool:
    """The launcher is up in the container (it then hears SIGUSR1)."""
    return (report_dir / STARTED_FILE).exists()


def read_report(report_dir: Path) -> LaunchReport | None:
    """The launcher's report; None when there is none (no python3 in the image, or the
    container was killed before the launcher could write it) or it is not one."""
    try:
        fd = os.open(report_dir / REPORT_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
            return None
        raw = os.read(fd, MAX_REPORT_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
    except ValueError:
        log.debug("the launcher's report is not JSON: %r", raw[:200])
        return None
    return report_from(data) if isinstance(data, dict) else None


def report_from(data: dict[str, Any]) -> LaunchReport | None:
    exit_code, signal = _count(data.get("exit")), _count(data.get("signal"))
    if (exit_code is None) == (signal is None):
        return None  # it exited, or a signal ended it: exactly one
    rss = _count(data.get("max_rss_kb"))
    stopped = data.get("stopped")
    return LaunchReport(
        exit=exit_code,
        signal=signal,
        user_s=_seconds(data.get("user_s")),
        system_s=_seconds(data.get("system_s")),
        # ru_maxrss is in KiB on Linux; 0 means the kernel did not say (nothing was waited for)
        max_rss_bytes=rss * 1024 if rss else None,
        oom_kills=_count(data.get("oom_kills")),
        stopped=stopped if stopped in ("backstop", "asked") else None,
    )


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return round(float(value), 3)


def remove_report_dir(report_dir: Path) -> None:
    """Gone with all the container may have left in it (never following a link out)."""
    shutil.rmtree(report_dir, ignore_errors=True)
