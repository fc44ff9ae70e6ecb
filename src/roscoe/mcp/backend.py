"""What the MCP tools need from whoever carries out runs: the contract both transports serve.

Both hand the tools the execution service's machinery (its limiter, its records, its cancel;
`mcp.service_backend`): the runner's `/mcp` endpoint the runner's own, `roscoe mcp` (stdio) one
it holds in its own process (`mcp.local`). Every call says who asks (`Principal`,
roscoe.access): over HTTP the holder of a scoped token sees and runs only its cases and tools,
as through the REST API; the local user of stdio, and the admin token, may do everything.

Backends are called from worker threads, never on the event loop, and may block. They raise
RoscoeError (UsageError for a caller's mistake) with the message and hint the CLI would print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from roscoe.access.principal import Principal

__all__ = ["CANCELLED_ON_REQUEST", "Backend", "Principal", "RunAsk", "RunView"]

# What a run's record says when cancel_run stopped it.
CANCELLED_ON_REQUEST = "cancelled on request (cancel_run)"


@dataclass(frozen=True)
class RunAsk:
    """A run a caller asks for: `script` from Tools with `args`, against the case `case`."""

    case: str
    script: str
    args: tuple[str, ...] = ()
    timeout: float | None = None  # None: the backend's default
    preview: bool = False  # on a copy of the case; its changes wait to be applied by a person


@dataclass
class RunView:
    """A run as a caller sees it: its record (as JSON) and, when asked for, its output's tail.

    `record["status"]` is "queued" or "running" while it is under way. `last_line` is the
    last line of output seen so far (for progress messages).
    """

    record: dict[str, Any]
    output: str | None = None
    output_truncated: bool = False
    last_line: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.record.get("id", ""))

    @property
    def status(self) -> str:
        return str(self.record.get("status", ""))

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "running", "")


class Backend(Protocol):
    """The run machinery behind the MCP tools (see the module's docstring)."""

    def max_timeout(self) -> float:
        """The longest timeout a caller may ask for."""

    def list_cases(self, who: Principal) -> list[dict[str, Any]]:
        """[{"name", "modified_at"}], sorted by name."""

    def list_tools(self, who: Principal) -> list[dict[str, Any]]:
        """[{"name", "kind", "description"}], sorted by name."""

    def start(self, ask: RunAsk, who: Principal) -> RunView:
        """Check the ask and start the run without waiting for it; UsageError when refused
        (no such case or script, a name that leads outside, too many runs waiting)."""

    def wait(self, run_id: str, seconds: float) -> RunView:
        """The run once it is over, or as it is after `seconds` (whichever comes first)."""

    def view(self, run_id: str, who: Principal, tail_bytes: int) -> RunView:
        """The run's record and the last `tail_bytes` of its output; UsageError for no run."""

    def cancel(self, run_id: str, who: Principal, why: str = CANCELLED_ON_REQUEST) -> RunView:
        """Stop a queued or running run (its record's message says `why`) and return its final
        record; UsageError when there is no such run or it is already over."""
