"""The agent tools: what can run, and run a script against a case, through the execution
service, with text back.

`list_cases`, `list_tools` and `run_case_script` are meant to be handed to an LLM agent
framework as tools: their signatures are plain strings, their docstrings the tools'
descriptions, and whatever happens they return text the model can act on instead of
raising. Standard library only, so any agent runtime can import them.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from roscoe.config.settings import ENV_TOKEN, ENV_URL, default
from roscoe.runs.outcome import RunStatus

# The service's longest allowed run plus room for the container to start and be removed.
READ_TIMEOUT_S = 3600 + 120


@dataclass(frozen=True)
class ServiceAddress:
    url: str
    token: str | None
    token_source: str


def service_address() -> ServiceAddress:
    """Where the service is and the token to use: ROSCOE_URL/ROSCOE_TOKEN, else roscoe's own."""
    url = os.environ.get(ENV_URL, "").strip().rstrip("/")
    if not url:
        from roscoe.config.settings import Settings

        try:
            port = Settings().get("port")
        except Exception:  # a broken config file must not break the tool; use the default
            port = default("port")
        url = f"http://127.0.0.1:{port}"
    token = os.environ.get(ENV_TOKEN, "").strip()
    if token:
        return ServiceAddress(url, token, ENV_TOKEN)
    from roscoe.config import paths
    from roscoe.errors import UsageError
    from roscoe.runner.token import read_token

    where = paths.token_file()
    try:
        return ServiceAddress(url, read_token(where), str(where))
    except UsageError:
        return ServiceAddress(url, None, str(where))


def run_case_script(case_name: str, script_name: str, arguments: str = "") -> str:
    """Run a script from the shared Tools folder against one case folder, in a sandbox.

    The script runs in a fresh, short-lived container that sees only two folders:
    - /data: the case folder `case_name` (read-write). It is the working directory, so
      relative paths in the script and its arguments refer to files of the case.
    - /tools: the Tools folder holding every script (read-only).
    There is no network access unless the operator allowed it, and the run is stopped at
    its time limit. Scripts are chosen by file name in Tools: `.py` runs with python3,
    `.sh` with sh.

    Args:
        case_name: the case folder's name (a folder inside the workspace's projects/).
        script_name: the script's file name inside Tools, e.g. "count_words.py".
        arguments: the script's command-line arguments as one string, split like a shell
            does (quotes group words), e.g. '--top 5 "notes file.txt"'.

    Returns:
        What happened, as text: the exit code and the script's output (stdout and stderr
        together; the last 64 KiB when longer), a timeout, or a system error with what to do.

    Examples:
        run_case_script("case-001", "count_words.py")
        run_case_script("case-001", "count_words.py", "--top 5 notes.txt")
        run_case_script("acme-audit", "summarise.sh", "'Q3 report.csv'")
    """
    try:
        args = shlex.split(arguments or "")
    except ValueError as exc:
        return f"Error: the arguments could not be split like a shell command line ({exc})."
    address = service_address()
    if address.token is None:
        return _no_token(address)
    what = f"'{script_name}' on case '{case_name}'"
    payload = {"case": case_name, "script": script_name, "args": args}
    answer = _call(address, "POST", "/runs", what, payload)
    if isinstance(answer, str):
        return answer
    return format_record(answer, what)


def list_cases() -> str:
    """List the cases a script can be run against: the folders in the workspace's projects/.

    Returns:
        One line per case: its name (what run_case_script takes as case_name) and when its
        folder last changed; or a system error with what to do.
    """
    address = service_address()
    if address.token is None:
        return _no_token(address)
    answer = _call(address, "GET", "/cases", "listing the cases")
    if isinstance(answer, str):
        return answer
    cases = answer.get("cases") or []
    if not cases:
        return "No cases: the workspace's projects/ folder holds no case folder yet."
    lines = [f"{len(cases)} case(s):"]
    lines += [f"- {c.get('name')} (modified {c.get('modified_at')})" for c in cases]
    return "\n".join(lines)


def list_tools() -> str:
    """List the scripts that can be run on a case: the files in the shared Tools folder.

    Returns:
        One line per script: its name (what run_case_script takes as script_name, with its
        sub-folder when it has one, e.g. "reports/weekly.py"), its kind (python or shell)
        and what it does, from its docstring or leading comment; or a system error.
    """
    address = service_address()
    if address.token is None:
        return _no_token(address)
    answer = _call(address, "GET", "/tools", "listing the tools")
    if isinstance(answer, str):
        return answer
    tools = answer.get("tools") or []
    if not tools:
        return "No tools: the Tools folder holds no .py or .sh script yet."
    lines = [f"{len(tools)} tool(s):"]
    for tool in tools:
        described = f": {tool['description']}" if tool.get("description") else ""
        lines.append(f"- {tool.get('name')} ({tool.get('kind')}){described}")
    return "\n".join(lines)


_DROPPED = (ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected)


def _unreachable(address: ServiceAddress, exc: Exception) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, _DROPPED) or isinstance(reason, _DROPPED):
        # It took the connection, then dropped it: there, but overwhelmed.
        return (
            f"Busy: the execution service at {address.url} dropped the connection before "
            f"answering ({reason}); it is probably overloaded. Wait a few seconds and retry."
        )
    return (
        f"System error: the roscoe execution service at {address.url} is not reachable "
        f"({reason}). It is probably not running: run `roscoe server start`, then try again."
    )


def _no_token(address: ServiceAddress) -> str:
    return (
        f"System error: no token for the roscoe execution service ({address.token_source} "
        "is missing or unreadable). Start the service with `roscoe server start` (it "
        f"creates the token), or set {ENV_TOKEN}."
    )


def _call(
    address: ServiceAddress,
    method: str,
    path: str,
    what: str,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any] | str:
    """The service's JSON answer, or the text explaining why there is none."""
    if not address.url.startswith(("http://", "https://")):
        return f"System error: {ENV_URL}={address.url} is not an http:// or https:// address."
    headers = {"Authorization": f"Bearer {address.token}"}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
        f"{address.url}{path}",
        data=None if payload is None else json.dumps(payload).encode(),
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as answer:  # noqa: S310 - as above
            data = json.loads(answer.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as exc:
        return _http_error(exc, what, address)
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
        return _unreachable(address, exc)
    except (ValueError, OSError) as exc:
        return f"System error: the service's answer could not be read ({exc}). Try again."
    if not isinstance(data, dict):
        return "System error: the service's answer was not a JSON object. Try again."
    return data


def format_record(record: dict[str, Any], what: str) -> str:
    """A run record as the text the agent reads."""
    status = str(record.get("status", "unknown"))
    code = record.get("exit_code")
    duration = record.get("duration_s")
    took = f", {duration:.1f} s" if isinstance(duration, (int, float)) else ""
    run = f" (run {record['id']})" if record.get("id") else ""
    output = str(record.get("output") or "")
    if record.get("output_truncated"):
        output = f"[... earlier output cut; only the last part is shown ...]\n{output}"
    shown = output if output.strip() else "(no output)"
    if status == RunStatus.SUCCEEDED:
        head = f"Success: {what} finished with exit code 0{took}{run}."
    elif record.get("timed_out") or status == RunStatus.TIMED_OUT:
        head = (
            f"Timeout: {what} ran past its time limit and was stopped{took}{run}. "
            "Make it do less per run, or ask the operator for a longer timeout."
        )
    elif status == RunStatus.OOM_KILLED:
        head = (
            f"Failure: {what} was killed at its memory limit (exit code {code}){took}{run}. "
            "Make it use less memory."
        )
    elif status == RunStatus.FAILED:
        head = f"Failure: {what} failed with exit code {code}{took}{run}."
    elif status == RunStatus.CANCELLED:
        message = f" ({record['message']})" if record.get("message") else ""
        head = f"Cancelled: {what} was cancelled before it finished{message}{run}."
    elif status == RunStatus.UNKNOWN:
        head = (
            f"Unknown: the container engine stopped answering while {what} ran{run}, so how it "
            "ended is not known; it may still be running and may have changed the case. "
            "Do not assume it ran or failed: check the case, or run it again later."
        )
    elif status == RunStatus.INTERRUPTED:
        head = (
            f"Interrupted: {what} was stopped before it finished (the service is shutting "
            f"down){run}. Try again in a moment."
        )
    else:
        message = f": {record['message']}" if record.get("message") else ""
        head = f"System error: {what} could not be run ({status}{message}){run}."
    if status in ("succeeded", "failed") and record.get("message"):
        # e.g. a process the script started was killed at the memory limit
        head += f" Note: {record['message']}."
    return f"{head}\nOutput:\n{shown}"


def _http_error(exc: urllib.error.HTTPError, what: str, address: ServiceAddress) -> str:
    try:
        reason = str(json.loads(exc.read().decode("utf-8")).get("error", ""))
    except (ValueError, OSError, AttributeError):
        reason = ""
    reason = reason or str(exc.reason)
    if exc.code == 401:
        return (
            "System error: the execution service refused the token (401: token mismatch). "
            f"The token from {address.token_source} is not the running service's: restart it "
            f"with `roscoe server restart` (it reads the token again), or set {ENV_TOKEN} to "
            "its token."
        )
    if exc.code in (400, 404, 413, 422):
        return (
            f"Error: {what} was refused: {reason}. Check the case and script names "
            "(the case is a folder in projects/, the script a file in Tools) and the arguments."
        )
    if exc.code == 429:
        wait = exc.headers.get("Retry-After", "a few")
        return (
            f"Busy: the execution service has too many runs waiting ({reason}). "
            f"Wait {wait} seconds and try again: this is not a failure of {what}, retry it."
        )
    if exc.code == 503:
        return f"System error: the execution service is unavailable ({reason}). Try again later."
    return (
        f"System error: the execution service answered {exc.code} ({reason}). "
        "See `roscoe logs` for details."
    )
