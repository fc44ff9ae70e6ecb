"""The service's log: one JSON object per line on stdout, every line redacted.

The container's stdout is what `roscoe logs` shows, so nothing reaches it without passing
through redact_fields(): the token and every credential-looking value are masked even when a
caller forgets to leave them out.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, TextIO

from roscoe.service.redact import redact_fields


class JsonLog:
    def __init__(self, stream: TextIO | None = None, secrets: Iterable[str] = ()):
        self._stream = stream or sys.stdout
        self._secrets = tuple(secrets)
        self._lock = threading.Lock()

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
        text = self.line(event, level, **fields)
        with self._lock:
            try:
                self._stream.write(text + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # stdout closed under us: never fail a run over a log
                pass
