"""The service's log: one JSON object per line on stdout, every line redacted.

The container's stdout is what `roscoe logs` shows, so nothing reaches it without passing
through redact_fields(): the token and every credential-looking value are masked even when a
caller forgets to leave them out. Lines below the log level (service.log_level, `info` by
default) are not written: at `info`, the /health probes stay out of a log kept for months.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, TextIO

from roscoe.service.redact import redact_fields

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class JsonLog:
    def __init__(
        self, stream: TextIO | None = None, secrets: Iterable[str] = (), level: str = "info"
    ):
        self._stream = stream or sys.stdout
        self._secrets = tuple(secrets)
        self._lock = threading.Lock()
        self.level = level

    @property
    def level(self) -> str:
        return self._level

    @level.setter
    def level(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"'{level}' is not a log level ({', '.join(LEVELS)})")
        self._level = level
        self._threshold = LEVELS[level]

    def enabled(self, level: str) -> bool:
        return LEVELS.get(level, LEVELS["error"]) >= self._threshold

    def add_secret(self, secret: str) -> None:
        self._secrets = (*self._secrets, secret)

    def line(self, event: str, level: str = "info", **fields: Any) -> str:
        """The redacted JSON line for an event (without writing it)."""
        record = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
            **fields,
        }
        return json.dumps(redact_fields(record, self._secrets), default=str, ensure_ascii=False)

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        if not self.enabled(level):
            return
        text = self.line(event, level, **fields)
        with self._lock:
            try:
                self._stream.write(text + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # stdout closed under us: never fail a run over a log
                pass
