"""How a run ended, in the user's words: status, roscoe's exit code and a line to show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from roscoe.errors import ExitCode

if TYPE_CHECKING:
    pass


def classify(
    exit_code: int | None,
    *,
    timed_out: bool,
    interrupted: bool,
    oom_killed: bool,
    timeout: float,
    memory: str,
) -> tuple[str, int, str | None]:
    """(status, roscoe's exit code, a line for the user) from how the container ended.

    Exit 137 under a memory limit, with no timeout or interrupt, counts as an OOM kill even
    when the engine says OOMKilled=false (podman always does).
    """
    if interrupted:
        return "interrupted", ExitCode.INTERRUPTED, "interrupted: the container was stopped"
    if timed_out:
        return "timed_out", ExitCode.TIMEOUT, f"timed out after {timeout:g} s"
    if oom_killed or exit_code == ExitCode.OOM:
        return (
            "oom_killed",
            ExitCode.OOM,
            f"killed at the memory limit ({memory}): probably out of memory",
        )
    if exit_code == 0:
        return "succeeded", 0, None
    if exit_code is None:
        return "error", ExitCode.ENGINE_DURING_RUN, "the engine reported no exit code"
    return "failed", exit_code, None
