"""`roscoe logs`: the runner's output, streamed from the engine, never read whole.

The tail is asked of the engine (`tail=N`); a followed stream survives long silences (see
engine.Engine.stream_logs) and ends when the container stops. ROSCOE_LOGS_READ_TIMEOUT sets how
often a silent stream checks the container is still there (tests shorten it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from roscoe.config.settings import ENV_LOGS_READ_TIMEOUT, LOGS_READ_TIMEOUT_S
from roscoe.errors import OperationFailed, UsageError
from roscoe.runner import container as runner

if TYPE_CHECKING:
    from roscoe.config.settings import Settings
    from roscoe.engine.protocols import RunnerEngine

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_tail(text: str) -> int | str:
    """'all' or a whole number >= 0."""
    value = text.strip().lower()
    if value == "all":
        return "all"
    if value.isdigit():
        return int(value)
    raise UsageError(f"--tail {text}: not a number of lines", hint="use --tail 100 or --tail all")


def parse_since(text: str, now: float | None = None) -> int:
    """'10m', '2h', '30s', '1d' (ago) or an RFC 3339 timestamp -> unix seconds."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return int(now - float(match.group(1)) * _UNIT[match.group(2).lower()])
    parsed = runner.parse_timestamp(text) if "T" in text.upper() else None
    if parsed is None:
        raise UsageError(
            f"--since {text}: not a duration or a timestamp",
            hint="use e.g. --since 10m, --since 2h, or --since 2024-05-01T12:00:00Z",
        )
    return int(parsed.timestamp())


def read_timeout(environ: dict[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    try:
        value = float(env.get(ENV_LOGS_READ_TIMEOUT, LOGS_READ_TIMEOUT_S))
    except ValueError:
        return LOGS_READ_TIMEOUT_S
    return value if value > 0 else LOGS_READ_TIMEOUT_S


def runner_logs(
    engine: RunnerEngine,
    settings: Settings,
    *,
    follow: bool = False,
    tail: int | str = "all",
    since: int | None = None,
    timestamps: bool = False,
    timeout: float | None = None,
) -> Iterator[tuple[int, bytes]]:
    """(stream, bytes) pieces of the runner's output: 1 stdout, 2 stderr."""
    name = settings.get("container_name")
    found = runner.find(engine, name)
    if found.ours is None:
        hint = "start it with `roscoe server start`"
        if found.foreign is not None:
            hint = f"the container named {name} is not roscoe's; " + hint
        raise OperationFailed(f"no runner container ({name})", hint=hint)
    container_id = str(found.ours["Id"])
    tty = bool((found.ours.get("Config") or {}).get("Tty"))

    def still_running() -> bool:
        inspected = engine.inspect_container(container_id)
        return inspected is not None and runner.status_of(inspected) in ("running", "restarting")

    return engine.stream_logs(
        container_id,
        tty=tty,
        follow=follow,
        tail=tail,
        since=since,
        timestamps=timestamps,
        read_timeout=timeout if timeout is not None else read_timeout(),
        still_running=still_running,
    )
