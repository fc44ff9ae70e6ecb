"""How a run ended, in the user's words: status, roscoe's exit code and a line to show."""

from __future__ import annotations

from roscoe.errors import ExitCode
from roscoe.strenum import StrEnum


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


def classify(
    exit_code: int | None,
    *,
    timed_out: bool,
    interrupted: bool,
    oom_killed: bool,
    timeout: float,
    memory: str,
) -> tuple[RunStatus, int, str | None]:
    """(status, roscoe's exit code, a line for the user) from how the container ended.

    One rule on both engines: the script's own exit code wins. Exit 137 under a memory limit,
    with no timeout or interrupt, is the script killed at the limit, even when the engine says
    OOMKilled=false (podman always does). When the engine says OOMKilled but the script exited
    with another code, a process it started was killed there (Docker reports OOMKilled for the
    whole container): the code stands, and the line warns of the kill.
    """
    if interrupted:
        return RunStatus.INTERRUPTED, ExitCode.INTERRUPTED, "interrupted: the container was stopped"
    if timed_out:
        return RunStatus.TIMED_OUT, ExitCode.TIMEOUT, f"timed out after {timeout:g} s"
    if exit_code == ExitCode.OOM or (oom_killed and exit_code is None):
        return (
            RunStatus.OOM_KILLED,
            ExitCode.OOM,
            f"killed at the memory limit ({memory}): probably out of memory",
        )
    warning = (
        f"warning: a process of the run was killed at the memory limit ({memory}); "
        f"the script itself exited with {exit_code}"
        if oom_killed
        else None
    )
    if exit_code == 0:
        return RunStatus.SUCCEEDED, 0, warning
    if exit_code is None:
        return RunStatus.ERROR, ExitCode.ENGINE_DURING_RUN, "the engine reported no exit code"
    return RunStatus.FAILED, exit_code, warning
