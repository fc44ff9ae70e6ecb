"""One line of `roscoe doctor`: a name, a status, what was found and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn" (works, but worth knowing), "fail"
    detail: str
    hint: str | None = None
