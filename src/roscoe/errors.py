"""One family of errors. The CLI catches RoscoeError at one point and prints message + hint."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes (README, "Exit codes"). A run's script code passes straight through."""

    OK = 0
    FAILED = 1  # the operation failed, or the state is not the one asked for
    USAGE = 2  # invalid usage or input
    NO_ENGINE = 3  # no reachable container engine
    IMAGE = 4  # image absent and not pullable, or the pull failed
    ISOLATION = 5  # the engine cannot give a run the isolation asked for (gVisor, limits)
    TIMEOUT = 124  # roscoe run: the script ran past --timeout
    ENGINE_DURING_RUN = 125  # roscoe run: the engine failed while the run was under way
    OOM = 137  # roscoe run: killed at the memory limit (128 + SIGKILL)
    INTERRUPTED = 130  # roscoe run: Ctrl-C or SIGTERM


class RoscoeError(Exception):
    """An error a user can act on: one line of message, an optional hint, an exit code."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(RoscoeError):
    """Bad input from the user: a wrong flag value, a case that does not exist, a traversal."""

    exit_code = ExitCode.USAGE


class EngineError(RoscoeError):
    """No container engine could be reached (missing, not running, no permission, too old)."""

    exit_code = ExitCode.NO_ENGINE


class EngineUnreachable(EngineError):
    """The engine's socket failed while a run's container existed: how the run goes on is not
    known (the container may still be running). `roscoe run` exits 125."""

    exit_code = ExitCode.ENGINE_DURING_RUN


class ImageError(RoscoeError):
    """The image is absent and could not be pulled, or the pull failed."""

    exit_code = ExitCode.IMAGE


class IsolationError(RoscoeError):
    """The engine cannot give a run the isolation asked for: gVisor is not set up there, or
    it cannot enforce a run's limits. Said before any container exists, with what to do."""

    exit_code = ExitCode.ISOLATION


class Interrupted(RoscoeError):
    """Ctrl-C or SIGTERM ended the command before anything ran."""

    exit_code = ExitCode.INTERRUPTED


class OperationFailed(RoscoeError):
    """The operation was carried out but failed, or the state is not the one asked for."""

    exit_code = ExitCode.FAILED
