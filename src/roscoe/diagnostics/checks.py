"""One line of `roscoe doctor`: a name, a status, what was found and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roscoe.strenum import StrEnum


class CheckStatus(StrEnum):
    """A check's verdict (a contract: docs/json.md)."""

    OK = "ok"
    WARN = "warn"  # works, but worth knowing
    FAIL = "fail"


@dataclass
class Check:
    name: str
    status: CheckStatus
    detail: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "hint": self.hint,
        }
