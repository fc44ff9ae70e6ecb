"""What `GET /metrics` counts, in Prometheus' text format (no client library needed).

Counters only grow while the service lives; gauges (in flight, queued, stream clients) are
read when the page is made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# Run durations (the script's own time, as in the record), in seconds.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Metrics:
    refused: int = 0  # 429 answers
    by_status: dict[str, int] = field(default_factory=dict)
    _buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    _count: int = 0
    _sum: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, status: str, duration_s: Any) -> None:
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if isinstance(duration_s, (int, float)) and not isinstance(duration_s, bool):
                self._count += 1
                self._sum += float(duration_s)
                for i, bound in enumerate(DURATION_BUCKETS):
                    if duration_s <= bound:
                        self._buckets[i] += 1

    def render(
        self, *, in_flight: int, queued: int, stream_clients: int, build: dict[str, str]
    ) -> str:
        with self._lock:
            by_status = dict(self.by_status)
            buckets, count, total, refused = (
                list(self._buckets),
                self._count,
                self._sum,
                self.refused,
            )
        lines = [
            "# HELP roscoe_runs_total Runs finished since the service started, by final status.",
            "# TYPE roscoe_runs_total counter",
        ]
        lines += [
            f'roscoe_runs_total{{status="{_escape(s)}"}} {n}' for s, n in sorted(by_status.items())
        ]
        lines += [
            "# HELP roscoe_run_duration_seconds How long finished runs' scripts ran.",
            "# TYPE roscoe_run_duration_seconds histogram",
        ]
        lines += [
            f'roscoe_run_duration_seconds_bucket{{le="{bound:g}"}} {n}'
            for bound, n in zip(DURATION_BUCKETS, buckets, strict=True)
        ]
        lines += [
            f'roscoe_run_duration_seconds_bucket{{le="+Inf"}} {count}',
            f"roscoe_run_duration_seconds_sum {total:.6f}",
            f"roscoe_run_duration_seconds_count {count}",
            "# HELP roscoe_runs_in_flight Runs holding a slot now.",
            "# TYPE roscoe_runs_in_flight gauge",
            f"roscoe_runs_in_flight {in_flight}",
            "# HELP roscoe_runs_queued Runs waiting for a slot now.",
            "# TYPE roscoe_runs_queued gauge",
            f"roscoe_runs_queued {queued}",
            "# HELP roscoe_runs_refused_total Requests refused with 429 (slots and queue full).",
            "# TYPE roscoe_runs_refused_total counter",
            f"roscoe_runs_refused_total {refused}",
            "# HELP roscoe_stream_clients Clients following a run's output or events now.",
            "# TYPE roscoe_stream_clients gauge",
            f"roscoe_stream_clients {stream_clients}",
            "# HELP roscoe_build_info The roscoe version and the engine the service uses.",
            "# TYPE roscoe_build_info gauge",
            "roscoe_build_info{"
            + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(build.items()))
            + "} 1",
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
