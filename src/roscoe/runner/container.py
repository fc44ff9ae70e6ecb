"""Finding the runner container and telling ours from a stranger's with the same name.

Ours: the stored ID names it, or it carries roscoe's managed-by and kind=server labels.
A container with our name and no roscoe label is someone else's: never touched unasked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from roscoe.images.version import OCI_VERSION_LABEL
from roscoe.labels import (
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_OWNER_CONTAINER,
    LABEL_OWNER_STARTED,
    MANAGED_BY_VALUE,
)
from roscoe.runner import store as state

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunnerEngine


@dataclass(frozen=True)
class Found:
    """What the engine holds under the runner's name or stored ID."""

    ours: dict[str, Any] | None  # inspect data of our runner, if there is one
    foreign: dict[str, Any] | None  # a container with our name that is not roscoe's


def is_ours(inspected: dict[str, Any]) -> bool:
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY_VALUE and labels.get(LABEL_KIND) == "server"


def find(engine: RunnerEngine, name: str, *, forget_stale: bool = False) -> Found:
    """Our runner (by stored ID, then by name + labels) and any stranger holding the name.

    A stored ID whose container is gone (the engine was reset, or someone removed it by hand)
    is ignored; it is forgotten only with forget_stale, which start and stop pass while they
    hold the start lock: a read (status, logs, doctor) must not race a start that has just
    written the ID of the container it is creating.
    """
    stored = state.read_container_id()
    ours = engine.inspect_container(stored) if stored else None
    if stored and ours is None and forget_stale:
        state.clear_container_id()
    if ours is not None and (not is_ours(ours) or container_name(ours) != name):
        ours = None  # the ID now belongs to something else, or the name was changed
    by_name = engine.inspect_container(name) if ours is None else None
    if by_name is not None and container_name(by_name) != name:
        by_name = None  # `name` matched an ID prefix, not a name
    if by_name is not None and is_ours(by_name):
        return Found(ours=by_name, foreign=None)
    return Found(ours=ours, foreign=by_name)


def owner_labels(inspected: dict[str, Any]) -> dict[str, str]:
    """The labels that tie a run to this runner container and to this start of it: gc stops
    and removes the run once the container is gone, stopped, or restarted (runs.gc)."""
    return {
        LABEL_OWNER_CONTAINER: str(inspected.get("Id") or ""),
        LABEL_OWNER_STARTED: str((inspected.get("State") or {}).get("StartedAt") or ""),
    }


def container_name(inspected: dict[str, Any]) -> str:
    return str(inspected.get("Name") or "").lstrip("/")


def status_of(inspected: dict[str, Any]) -> str:
    """The engine's state word: created, running, restarting, paused, exited, dead."""
    return str((inspected.get("State") or {}).get("Status") or "unknown").lower()


def exit_code(inspected: dict[str, Any]) -> int | None:
    code = (inspected.get("State") or {}).get("ExitCode")
    return int(code) if code is not None else None


def env_value(inspected: dict[str, Any], key: str) -> str | None:
    for item in (inspected.get("Config") or {}).get("Env") or []:
        name, _, value = str(item).partition("=")
        if name == key:
            return value
    return None


def started_at(inspected: dict[str, Any]) -> datetime | None:
    """State.StartedAt (RFC 3339 with nanoseconds) as an aware datetime."""
    text = str((inspected.get("State") or {}).get("StartedAt") or "")
    if not text or text.startswith("0001-"):
        return None
    return parse_timestamp(text)


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339, with any number of fraction digits (engines give nine)."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def image_version(image: dict[str, Any] | None) -> str:
    """The version label of an image's inspect data; "unknown" when unlabelled."""
    if not image:
        return "unknown"
    labels = (image.get("Config") or {}).get("Labels") or {}
    return str(labels.get(OCI_VERSION_LABEL) or "unknown")


def remove(engine: RunnerEngine, container_id: str, stop_timeout: float | None = None) -> None:
    """Stop (gracefully when a timeout is given) and remove a container; gone is fine."""
    if stop_timeout is not None:
        with contextlib.suppress(Exception):  # already stopped or gone: removal decides
            engine.stop_container(container_id, stop_timeout)
    engine.remove_container(container_id, force=True)
