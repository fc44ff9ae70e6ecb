"""What a workspace offers: its cases and its tools, as a caller (an agent) discovers them.

Cases are the folders directly in projects/: one `scandir` and one `stat` each, never a
recursive walk, so listing stays fast on a bucket mounted with FUSE. Tools are the runnable
scripts in Tools/ (sub-folders included, named `sub/name.py`), each described by its own
module docstring or leading comment block (first paragraph): tool authors describe a tool
where they write it. Only names the run core would accept are listed (`Workspace.case_dir`
and `Workspace.script_path` rules), so everything listed can be run.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from roscoe.errors import UsageError
from roscoe.runs.workspace import INTERPRETERS, Workspace, check_case_name

# What a script's ending makes of it, in a caller's words.
KINDS = {".py": "python", ".sh": "shell"}
# A description is read from the head of the script only: a docstring or comment block that
# starts past this is not a description.
HEAD_BYTES = 64 * 1024
MAX_DESCRIPTION_CHARS = 1000
# Folders in Tools/ that hold no tools.
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


@dataclass(frozen=True)
class CaseInfo:
    name: str
    modified_at: str  # the case folder's own modification time, UTC ISO 8601

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ToolInfo:
    name: str  # relative to Tools/, with '/': what a run names as its script
    kind: str  # python or shell
    description: str  # "" when the script says nothing about itself

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def list_cases(workspace: Workspace) -> list[CaseInfo]:
    """The case folders in projects/, sorted by name; [] when projects/ does not exist.

    Hidden folders (a leading '.') are left out; so are entries `case_dir` would refuse
    (files, symlinks that lead out of projects/, names starting with '-').
    """
    root = workspace.projects_dir
    try:
        real_root = root.resolve()
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise UsageError(f"cannot list {root}: {exc.strerror}") from exc
    found = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            check_case_name(entry.name)
            if not entry.is_dir():
                continue
            if entry.is_symlink() and Path(entry.path).resolve().parent != real_root:
                continue
            modified = entry.stat().st_mtime
        except (UsageError, OSError):
            continue
        found.append(CaseInfo(entry.name, _iso(modified)))
    return sorted(found, key=lambda c: c.name)


def list_tools(workspace: Workspace) -> list[ToolInfo]:
    """Every runnable script in Tools/ (sub-folders included), sorted by name.

    Hidden files and folders are left out, and so is anything `script_path` would refuse
    (unknown endings, symlinks that lead out of Tools/).
    """
    root = workspace.tools_dir
    if not root.is_dir():
        return []
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        relative = PurePosixPath(*Path(folder).relative_to(root).parts)
        for file_name in files:
            suffix = PurePosixPath(file_name).suffix.lower()
            if file_name.startswith(".") or suffix not in INTERPRETERS:
                continue
            name = str(relative / file_name)
            try:
                real = workspace.script_path(name)
            except UsageError:
                continue
            found.append(ToolInfo(name, KINDS.get(suffix, suffix.lstrip(".")), describe(real)))
    return sorted(found, key=lambda t: t.name)


def describe(script: Path) -> str:
    """The first paragraph of a script's docstring (.py) or leading comment block; "" if none.

    Never runs or imports the script; an unreadable one has no description.
    """
    try:
        with script.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return ""
    text = ""
    if script.suffix.lower() == ".py":
        text = _docstring(head)
    if not text:
        text = _leading_comments(head.decode("utf-8", errors="replace"))
    return _first_paragraph(text)


def _docstring(head: bytes) -> str:
    """The module docstring, found by tokenizing the head (a cut-off tail does not matter)."""
    skipped = {
        tokenize.ENCODING,
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
    }
    try:
        for token in tokenize.tokenize(io.BytesIO(head).readline):
            if token.type in skipped:
                continue
            if token.type != tokenize.STRING:
                return ""
            value = ast.literal_eval(token.string)
            return value if isinstance(value, str) else ""
    except (tokenize.TokenError, SyntaxError, ValueError, UnicodeDecodeError):
        return ""
    return ""


def _leading_comments(text: str) -> str:
    """The block of `#` lines at the top, after a shebang and coding/editor lines."""
    lines: list[str] = []
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if index == 0 and stripped.startswith("#!"):
            continue
        if not stripped:
            if lines:
                lines.append("")  # a blank line inside the block ends a paragraph
            continue
        if not stripped.startswith("#"):
            break
        body = stripped.lstrip("#")
        if "-*-" in body or body.strip().startswith(("vim:", "shellcheck ")):
            continue
        lines.append(body[1:] if body.startswith(" ") else body)
    return "\n".join(lines)


def _first_paragraph(text: str) -> str:
    paragraph: list[str] = []
    for line in text.strip().splitlines():
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    joined = " ".join(paragraph)
    if len(joined) > MAX_DESCRIPTION_CHARS:
        joined = joined[: MAX_DESCRIPTION_CHARS - 3].rstrip() + "..."
    return joined


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
