"""What a `POST /runs` body may say, checked before anything runs.

Everything here is pure: bytes in, a RunRequest or a Rejected (status + one-line reason) out.
The workspace itself (does the case exist, does the name lead outside) is checked by the run
core's Workspace; this module refuses what is malformed on its face.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from roscoe.config.parse import ENV_NAME, env_name_problem
from roscoe.runs.workspace import MAX_NAME_CHARS

MAX_BODY_BYTES = 64 * 1024
MAX_TIMEOUT_S = 3600.0
MAX_ARGS = 256
MAX_ARG_CHARS = 8192
MAX_ENV = 64
MAX_ENV_VALUE_CHARS = 8192
# The request line and headers together, and how many headers: beyond either, 431.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
# Seconds a client has to send its whole request (request line, headers and body).
REQUEST_DEADLINE_S = 30.0

_FIELDS = {"case", "script", "args", "timeout", "env", "wait", "preview"}


class Rejected(Exception):
    """A request refused before it ran: the HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RunRequest:
    case: str
    script: str
    args: tuple[str, ...] = ()
    timeout: float | None = None  # None: the service's default
    env: dict[str, str] = field(default_factory=dict)
    wait: bool = True  # False: answer 202 at once and carry the run out in the background
    requested_by: str | None = None  # the caller's token name, set by the service (not the body)
    preview: bool = False  # on a copy of the case; its changes wait for POST /runs/{id}/apply


def check_body_size(content_length: str | None) -> int:
    """The body length announced by the client; Rejected before a byte is read if unusable."""
    if content_length is None:
        raise Rejected(411, "a Content-Length header is required")
    try:
        length = int(content_length)
    except ValueError:
        raise Rejected(400, "Content-Length is not a number") from None
    if length < 0:
        raise Rejected(400, "Content-Length is negative")
    if length > MAX_BODY_BYTES:
        raise Rejected(413, f"the body is {length} bytes; the limit is {MAX_BODY_BYTES}")
    return length


def parse_run_request(body: bytes, max_timeout: float = MAX_TIMEOUT_S) -> RunRequest:
    """The run a POST /runs body asks for; Rejected (4xx) with the reason otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(400, "the body must be a JSON object")
    if not _encodable(data):
        # JSON lets "\ud800" through; such a string cannot be written, logged or passed on.
        raise Rejected(400, "the body holds a lone surrogate (\\ud800-\\udfff): not valid text")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise Rejected(
            400, f"unknown field(s): {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})"
        )
    for required in ("case", "script"):
        if required not in data:
            raise Rejected(400, f"'{required}' is required")
    return RunRequest(
        case=_name(data["case"], "case"),
        script=_name(data["script"], "script"),
        args=_args(data.get("args", [])),
        timeout=_timeout(data.get("timeout"), max_timeout),
        env=_env(data.get("env", {})),
        wait=_flag(data.get("wait", True), "wait"),
        preview=_flag(data.get("preview", False), "preview"),
    )


def _encodable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise Rejected(400, f"'{what}' must be true or false")
    return value


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Rejected(400, f"'{what}' must be a string")
    if not value.strip():
        raise Rejected(400, f"'{what}' is empty")
    if len(value) > MAX_NAME_CHARS:
        raise Rejected(400, f"'{what}' is longer than {MAX_NAME_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Rejected(400, f"'{what}' contains control characters")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or value.startswith("~"):
        raise Rejected(400, f"'{what}' must be a name inside the workspace, not an absolute path")
    if ".." in path.parts:
        raise Rejected(400, f"'{what}' must not contain '..'")
    # A case is ONE folder directly in projects/: a longer name passes through a folder that
    # scripts can write, where a symlink could be swapped in between the check and the mount.
    if what == "case" and ("/" in value or "\\" in value or value == "." or value[0] == "-"):
        raise Rejected(
            400, "'case' must be one folder name (no '/' or '\\', not '.', not starting with '-')"
        )
    return value


def _args(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise Rejected(400, "'args' must be a list of strings")
    if len(value) > MAX_ARGS:
        raise Rejected(400, f"'args' has more than {MAX_ARGS} items")
    if any(len(a) > MAX_ARG_CHARS or "\x00" in a for a in value):
        raise Rejected(
            400, f"each of 'args' must be at most {MAX_ARG_CHARS} characters, without NUL"
        )
    return tuple(value)


def _timeout(value: Any, max_timeout: float) -> float | None:
    if value is None:
        return None
    # bool is an int in Python; `"timeout": true` is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(400, "'timeout' must be a number of seconds")
    if not 0 < value <= max_timeout:
        raise Rejected(400, f"'timeout' must be more than 0 and at most {max_timeout:g} seconds")
    return float(value)


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Rejected(400, "'env' must be an object of string values")
    if len(value) > MAX_ENV:
        raise Rejected(400, f"'env' has more than {MAX_ENV} variables")
    env: dict[str, str] = {}
    for name, text in value.items():
        if not ENV_NAME.fullmatch(name):
            raise Rejected(400, f"'env' name '{name[:40]}' is not a variable name")
        problem = env_name_problem(name)  # the same rule as `roscoe run -e`
        if problem:
            raise Rejected(400, f"'env' must not set {name}: {problem}")
        if not isinstance(text, str):
            raise Rejected(400, f"'env' value of {name} must be a string")
        if len(text) > MAX_ENV_VALUE_CHARS or "\x00" in text:
            raise Rejected(
                400, f"'env' value of {name} must be at most {MAX_ENV_VALUE_CHARS} characters"
            )
        env[name] = text
    return env
