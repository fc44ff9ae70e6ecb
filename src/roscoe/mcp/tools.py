"""The MCP tools, once for both transports: what each is called, how a model reads about it,
and what it does over a Backend. No MCP SDK here: each handler returns a ToolResult (text for
the model, the record as structured content, and whether it is an error), and `server` turns
that into the protocol's result.

A caller's mistake (no such case, a refused name, a run that timed out or failed) is a
result with `is_error` set and the same message and hint the CLI prints, never an exception:
the model reads it and can correct itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from roscoe.client import format_record
from roscoe.errors import RoscoeError
from roscoe.mcp.backend import Backend, Principal, RunAsk, RunView
from roscoe.runs.workspace import MAX_NAME_CHARS
from roscoe.service.validate import MAX_ARG_CHARS, MAX_ARGS

# How much output a tool result carries: the end of it, where the outcome usually is.
OUTPUT_TAIL_BYTES = 16 * 1024
# While run_script waits: how often a progress notification goes out.
PROGRESS_EVERY_S = 1.0
MAX_LINE_IN_PROGRESS = 200

CASE_HELP = "The case: a folder name from list_cases."
SCRIPT_HELP = "The script: a name from list_tools, e.g. 'count_words.py' or 'sub/report.sh'."
ARGS_HELP = (
    "Command-line arguments for the script, one list item per argument, passed exactly as "
    "given (no shell, no quoting needed). Relative paths are files of the case."
)
TIMEOUT_HELP = (
    "Seconds the script may run before it is killed (status timed_out, exit code 124). "
    "Leave it out for the operator's default."
)
PREVIEW_HELP = (
    "true: the script works on a copy of the case and the case itself is not touched; the "
    "changes it made are listed in the run's record and wait for a person to apply them "
    "(roscoe runs apply ID) or discard them."
)
RUN_ID_HELP = "The run id that run_script or start_run returned, e.g. 20261121-112715-3f9a1c2e."

_SANDBOX = (
    "The script runs in a fresh, locked-down container that sees only two folders: the case, "
    "read-write at /data, which is its working directory (so relative paths in the script and "
    "its arguments are files of the case), and the tools, read-only at /tools. It has no "
    "network unless the operator allowed it, and it is killed at its timeout. .py scripts run "
    "with python3, .sh scripts with sh."
)

DESCRIPTIONS = {
    "list_cases": (
        "List the cases you can run scripts against. A case is one folder of files (a "
        "project, a dossier, a data set) in roscoe's workspace; every run works on exactly one "
        "case and sees nothing else from this machine. Returns each case's name (pass it as "
        "`case` to run_script or start_run) and when its folder last changed."
    ),
    "list_tools": (
        "List the scripts you can run against a case, each with what it does in its author's "
        "words. Returns each script's name (pass it as `script` to run_script or start_run; "
        "scripts in sub-folders are named like 'sub/name.py'), its kind (python or shell) and "
        "its description."
    ),
    "run_script": (
        "Run a script from list_tools against one case from list_cases, and wait until it is "
        f"over. {_SANDBOX} Returns, as text, the outcome (succeeded, failed, timed_out, "
        "oom_killed, cancelled, error, unknown), the exit code, the run id and the last part "
        "of the output (stdout and stderr together); the run record comes as structured "
        "content. A run that did not succeed is an error result, with its output. For long "
        "runs use start_run, then get_run."
    ),
    "start_run": (
        "Start a script against a case exactly like run_script, but return at once with the "
        "run id instead of waiting. Then call get_run with that id to see its status and its "
        f"output so far, and cancel_run to stop it. {_SANDBOX}"
    ),
    "get_run": (
        "Show a run that run_script or start_run started: its status (queued, running, or how "
        "it ended), exit code and timing, and the last part of its output so far. Call it "
        "again to follow a run that is still under way."
    ),
    "cancel_run": (
        "Stop a queued or running run: its container is killed and removed, and the run ends "
        "with exit code 130. Returns the final record. A run that is already over cannot be "
        "cancelled."
    ),
}


@dataclass
class ToolResult:
    """What a tool answers: text for the model, structured content, and the error flag."""

    text: str
    structured: dict[str, Any] = field(default_factory=dict)
    is_error: bool = False


def refusal(exc: RoscoeError) -> ToolResult:
    """A RoscoeError as the CLI would show it: the message, then the hint on its own line."""
    text = f"Error: {exc.message}"
    if exc.hint:
        text += f"\nhint: {exc.hint}"
    return ToolResult(text, {"error": exc.message, "hint": exc.hint}, is_error=True)


def list_cases(backend: Backend, who: Principal) -> ToolResult:
    cases = backend.list_cases(who)
    if not cases:
        text = "No cases: the workspace's projects folder holds no case folders."
    else:
        lines = [f"- {c['name']} (changed {c['modified_at']})" for c in cases]
        text = f"{len(cases)} case(s):\n" + "\n".join(lines)
    return ToolResult(text, {"cases": cases})


def list_tools(backend: Backend, who: Principal) -> ToolResult:
    tools = backend.list_tools(who)
    if not tools:
        text = "No tools: the workspace's Tools folder holds no .py or .sh scripts."
    else:
        lines = [
            f"- {t['name']} ({t['kind']}): {t['description'] or '(no description)'}" for t in tools
        ]
        text = f"{len(tools)} tool(s):\n" + "\n".join(lines)
    return ToolResult(text, {"tools": tools})


def make_ask(  # noqa: PLR0911 - one early refusal per rule reads as the list of rules
    backend: Backend, case: Any, script: Any, args: Any, timeout: Any, *, preview: Any = False
) -> RunAsk | ToolResult:
    """The run asked for, or the refusal (malformed on its face: before the backend looks)."""
    for what, value in (("case", case), ("script", script)):
        if not isinstance(value, str) or not value.strip():
            return _refused(f"'{what}' must be a non-empty name", _names_hint(what))
        if len(value) > MAX_NAME_CHARS:
            return _refused(f"'{what}' is longer than {MAX_NAME_CHARS} characters")
    if args is None:
        args = []
    if isinstance(args, str) or not isinstance(args, Sequence):
        return _refused(
            "'args' must be a list of strings", 'e.g. ["--format", "md"]: one item per argument'
        )
    if not all(isinstance(a, str) for a in args):
        return _refused("'args' must be a list of strings", 'quote numbers: ["--top", "5"]')
    if len(args) > MAX_ARGS:
        return _refused(f"'args' has more than {MAX_ARGS} items")
    if any(len(a) > MAX_ARG_CHARS or "\x00" in a for a in args):
        return _refused(f"each argument must be at most {MAX_ARG_CHARS} characters, without NUL")
    if timeout is not None:
        longest = backend.max_timeout()
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or not 0 < timeout <= longest
        ):
            return _refused(
                f"'timeout' must be a number of seconds, more than 0 and at most {longest:g}",
                "leave it out for the default",
            )
        timeout = float(timeout)
    if not isinstance(preview, bool):
        return _refused("'preview' must be true or false")
    return RunAsk(case=case, script=script, args=tuple(args), timeout=timeout, preview=preview)


def start_run(backend: Backend, who: Principal, ask: RunAsk) -> ToolResult:
    try:
        view = backend.start(ask, who)
    except RoscoeError as exc:
        return refusal(exc)
    text = (
        f"Started run {view.run_id}: {_what(view.record)} is {view.status}. Call get_run with "
        f"run_id '{view.run_id}' to see how it goes, or cancel_run to stop it."
    )
    return ToolResult(text, {"run_id": view.run_id, **view.record})


def finished_result(view: RunView) -> ToolResult:
    """A run that is over, as run_script and get_run answer it."""
    record = dict(view.record)
    shown = {**record, "output": view.output or "", "output_truncated": view.output_truncated}
    text = format_record(shown, _what(record))
    return ToolResult(text, record, is_error=record.get("status") != "succeeded")


def view_result(view: RunView) -> ToolResult:
    """get_run's answer: a finished run as run_script says it, one under way as it is now."""
    if view.finished:
        return finished_result(view)
    record = view.record
    output = view.output or ""
    if view.output_truncated:
        output = f"[... earlier output cut; only the last part is shown ...]\n{output}"
    if view.status == "queued":
        head = f"Queued: {_what(record)} waits for a free run slot (run {view.run_id})."
    else:
        head = f"Running: {_what(record)} is under way (run {view.run_id})."
    text = f"{head} Call get_run again later.\nOutput so far:\n{output or '(no output yet)'}"
    return ToolResult(text, dict(record))


def get_run(backend: Backend, who: Principal, run_id: Any) -> ToolResult:
    if not isinstance(run_id, str) or not run_id.strip():
        return _refused("'run_id' must be a run id", "run_script and start_run return it")
    try:
        view = backend.view(run_id, who, OUTPUT_TAIL_BYTES)
    except RoscoeError as exc:
        return refusal(exc)
    return view_result(view)


def cancel_run(backend: Backend, who: Principal, run_id: Any) -> ToolResult:
    if not isinstance(run_id, str) or not run_id.strip():
        return _refused("'run_id' must be a run id", "run_script and start_run return it")
    try:
        view = backend.cancel(run_id, who)
    except RoscoeError as exc:
        return refusal(exc)
    record = view.record
    text = (
        f"Cancelled run {view.run_id}: {_what(record)} ended {record.get('status')} "
        f"(exit code {record.get('exit_code')})."
    )
    return ToolResult(text, dict(record))


def progress_message(view: RunView, elapsed: float) -> str:
    """One line for a progress notification while run_script waits."""
    if view.status == "queued":
        return f"run {view.run_id} queued, waiting for a free run slot"
    line = " ".join(view.last_line.split())
    if len(line) > MAX_LINE_IN_PROGRESS:
        line = line[: MAX_LINE_IN_PROGRESS - 3] + "..."
    said = f": {line}" if line else ""
    return f"run {view.run_id} running for {elapsed:.0f} s{said}"


def _what(record: dict[str, Any]) -> str:
    return f"'{record.get('script', '?')}' on case '{record.get('case', '?')}'"


def _names_hint(what: str) -> str:
    return "list_cases names the cases" if what == "case" else "list_tools names the scripts"


def _refused(message: str, hint: str | None = None) -> ToolResult:
    return refusal(RoscoeError(message, hint=hint))
