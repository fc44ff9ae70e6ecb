"""The service's own pruning of run folders (service.prune, off by default).

The same policy as `roscoe runs prune` without options (runs.older_than, runs.keep,
runs.max_size), applied once when the service starts and then every PRUNE_INTERVAL_S, on a
thread of its own: nothing here knows about HTTP.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roscoe.runs.retention import Policy
    from roscoe.service.log import JsonLog

PRUNE_INTERVAL_S = 3600.0


class RetentionJob:
    def __init__(self, policy: Policy, log: JsonLog, interval: float = PRUNE_INTERVAL_S):
        self.policy = policy
        self.log = log
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.log(
            "retention",
            phase="on",
            policy=self.policy.describe(),
            interval_s=self.interval,
        )
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def run_once(self) -> None:
        from roscoe.runs.retention import prune

        try:
            result = prune(self.policy)
        except Exception as exc:  # a bad folder must not end the service, nor the job
            self.log("retention", level="error", phase="failed", error=str(exc))
            return
        if result.removed or result.failed:
            self.log(
                "retention",
                level="error" if result.failed else "info",
                phase="pruned",
                removed=len(result.removed),
                freed_bytes=result.freed_bytes,
                kept=result.kept,
                remaining_bytes=result.remaining_bytes,
                failed=[item.id for item, _ in result.failed],
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
