"""How a run ended, in the user's words: status, roscoe's exit code and a line to show.

The evidence, best first: what roscoe itself did (its timeout, a cancel); the launcher's
report from inside the container (runs/launcher.py: the script's own exit status, and the
kills at the memory limit its cgroup counted); what the engine says (Docker's OOMKilled;
Podman never says it); the container's exit code.
"""

from __future__ import annotations

import signal as signals
import sys
from dataclasses import dataclass

from roscoe.errors import EngineUnreachable, ExitCode, RoscoeError
from roscoe.runs.report import LaunchReport
from roscoe.strenum import StrEnum

GVISOR = "gvisor"


class RunStatus(StrEnum):
    """A run's status in its record (`roscoe runs`, the service's JSON): QUEUED while it waits
    for a slot (`roscoe mcp`), RUNNING while it is under way, one of the others once it is
    over. The values are a contract (docs/json.md)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OOM_KILLED = "oom_killed"
    INTERRUPTED = "interrupted"  # stopped from outside: Ctrl-C, SIGTERM, a shutdown
    CANCELLED = "cancelled"  # stopped because a caller asked for that run to stop
    ERROR = "error"
    # The engine stopped answering with the run under way: roscoe claims no result, and
    # `roscoe gc` finishes the record from the container's real end once it answers again.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Ending:
    """What is known about how a run's container ended."""

    exit_code: int | None  # the container's
    timed_out: bool = False  # roscoe stopped it at the timeout
    interrupted: bool = False  # roscoe stopped it: Ctrl-C, SIGTERM, a cancel
    oom_killed: bool = False  # the engine says so (Docker; Podman never does)
    report: LaunchReport | None = None
    launched: bool = False  # the launcher started (an image with python3)
    isolation: str = "runc"


def classify(ending: Ending, *, timeout: float, memory: str) -> tuple[RunStatus, int, str | None]:
    """(status, roscoe's exit code, a line for the user).

    One rule on every engine: the script's own exit code wins. A script killed at the memory
    limit is 137 and "oom_killed"; one that a signal of its own ended is 128 + the signal and
    "failed"; when a process the script started was killed at the limit but the script went on,
    its exit code stands and the line warns of the kill.
    """
    report = ending.report
    if ending.interrupted:
        return RunStatus.INTERRUPTED, ExitCode.INTERRUPTED, "interrupted: the container was stopped"
    if ending.timed_out or (report is not None and report.stopped == "backstop"):
        return RunStatus.TIMED_OUT, ExitCode.TIMEOUT, f"timed out after {timeout:g} s"
    at_limit = f"killed at the memory limit ({memory})"
    if report is not None:
        return _from_report(report, ending, at_limit, memory)
    if ending.isolation == GVISOR and ending.launched:
        return _sandbox_stopped(ending.exit_code, at_limit)
    # No report: an image without python3, or the launcher itself killed. Exit 137 under a
    # memory limit, with no timeout or interrupt, counts as an OOM kill even when the engine
    # says OOMKilled=false (Podman always does).
    code = ending.exit_code
    if code == ExitCode.OOM or (ending.oom_killed and code is None):
        return RunStatus.OOM_KILLED, ExitCode.OOM, f"{at_limit}: probably out of memory"
    warning = _process_killed(memory, code) if ending.oom_killed else None
    return _finished(code, warning)


def _from_report(
    report: LaunchReport, ending: Ending, at_limit: str, memory: str
) -> tuple[RunStatus, int, str | None]:
    if report.signal is not None:
        if report.signal == signals.SIGKILL and (
            (report.oom_kills or 0) > 0 or (report.oom_kills is None and ending.oom_killed)
        ):
            return RunStatus.OOM_KILLED, ExitCode.OOM, at_limit
        not_memory = ", not at the memory limit" if report.signal == signals.SIGKILL else ""
        return (
            RunStatus.FAILED,
            128 + report.signal,
            f"the script was killed by {_signal_name(report.signal)}{not_memory}",
        )
    killed = (report.oom_kills or 0) > 0 or (report.oom_kills is None and ending.oom_killed)
    return _finished(report.exit, _process_killed(memory, report.exit) if killed else None)


def _sandbox_stopped(code: int | None, at_limit: str) -> tuple[RunStatus, int, str | None]:
    """Under gVisor, the launcher started and never reported: the whole sandbox was stopped
    under it, by the memory limit (the host's OOM killer takes the sandbox) or by gVisor."""
    if code == ExitCode.OOM:
        return RunStatus.OOM_KILLED, ExitCode.OOM, f"{at_limit}: gVisor's sandbox was stopped"
    return (
        RunStatus.ERROR,
        ExitCode.ENGINE_DURING_RUN,
        f"gVisor's sandbox stopped before the script ended (exit {code}): it most likely ran "
        "out of processes (under gVisor each process of a script takes host processes of the "
        "run's 512)",
    )


def _finished(code: int | None, warning: str | None) -> tuple[RunStatus, int, str | None]:
    if code == 0:
        return RunStatus.SUCCEEDED, 0, warning
    if code is None:
        return RunStatus.ERROR, ExitCode.ENGINE_DURING_RUN, "the engine reported no exit code"
    return RunStatus.FAILED, code, warning


def _process_killed(memory: str, code: int | None) -> str:
    return (
        f"warning: a process of the run was killed at the memory limit ({memory}); "
        f"the script itself exited with {code}"
    )


def _signal_name(number: int) -> str:
    try:
        return f"{signals.Signals(number).name} ({number})"
    except ValueError:
        return f"signal {number}"


def engine_failure(exc: Exception) -> tuple[RunStatus, int, str]:
    """An engine that answered with a failure is an "error"; one that stopped answering (its
    socket failed, or a stream broke off) leaves the run "unknown"."""
    if isinstance(exc, EngineUnreachable):
        return _lost(exc.message)
    if isinstance(exc, RoscoeError):
        return RunStatus.ERROR, ExitCode.ENGINE_DURING_RUN, exc.message
    if _transport_failure(exc):
        return _lost(str(exc) or type(exc).__name__)
    return RunStatus.ERROR, ExitCode.ENGINE_DURING_RUN, f"engine failure: {exc}"


def _lost(reason: str) -> tuple[RunStatus, int, str]:
    """The engine stopped answering with the container in place: roscoe claims no result."""
    return (
        RunStatus.UNKNOWN,
        ExitCode.ENGINE_DURING_RUN,
        f"lost track of the run: the engine stopped answering ({reason}); the container may "
        "still be running; `roscoe gc` records how it ended once the engine answers again",
    )


def _transport_failure(exc: Exception) -> bool:
    """The engine's socket failed, or an answer broke off. http.client is looked at only when
    something (the SDK's streams) has imported it: the run path itself does not."""
    if isinstance(exc, OSError):
        return True
    http_client = sys.modules.get("http.client")
    return http_client is not None and isinstance(exc, http_client.HTTPException)
