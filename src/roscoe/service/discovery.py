"""What an agent can run: the cases in projects/ and the scripts in Tools/, described.

Cases are listed with one directory read (no walk into them): projects/ may be a bucket
mounted with FUSE, where every extra call is a round trip. Tools/ is walked (sub-folders
hold tools too), and each script's description is read from its head: the module docstring
of a Python script, else its leading comment block; the first paragraph of it.
"""

from __future__ import annotations

import ast
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from roscoe.runs.workspace import INTERPRETERS

# How much of a script is read for its description, and how long a description may be.
HEAD_BYTES = 64 * 1024
MAX_DESCRIPTION_CHARS = 1000
MAX_TOOLS = 2000  # a Tools folder with more is cut, so one request cannot walk forever
KINDS = {".py": "python", ".sh": "shell"}
_SKIPPED_DIRS = {"__pycache__", "node_modules"}


def list_cases(projects: Path) -> list[dict[str, Any]]:
    """[{"name", "modified_at"}] for each folder directly in `projects`, sorted by name.

    Hidden folders and names a run would refuse (starting with '-') are left out; a symlink
    counts only when it leads to a folder directly in `projects` (as a run requires).
    """
    try:
        entries = list(os.scandir(projects))
    except FileNotFoundError:
        return []
    real_projects = projects.resolve()
    cases = []
    for entry in entries:
        name = entry.name
        if name.startswith((".", "-")):
            continue
        try:
            if not entry.is_dir():
                continue
            if entry.is_symlink():
                target = Path(entry.path).resolve()
                if target.parent != real_projects or not target.is_dir():
                    continue
            modified = entry.stat().st_mtime
        except OSError:
            continue
        cases.append({"name": name, "modified_at": _iso(modified)})
    return sorted(cases, key=lambda c: c["name"])


def list_tools(tools: Path) -> list[dict[str, Any]]:
    """[{"name", "kind", "description"}] for every runnable script under `tools`, by name.

    Names are relative to `tools` with '/' (`sub/name.py`), as POST /runs takes them.
    Symlinks leading outside `tools` are left out, as a run would refuse them.
    """
    real_tools = tools.resolve() if tools.is_dir() else None
    if real_tools is None:
        return []
    found: list[dict[str, Any]] = []
    for folder, dirs, files in os.walk(tools, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for file_name in sorted(files):
            suffix = Path(file_name).suffix.lower()
            if file_name.startswith(".") or suffix not in INTERPRETERS:
                continue
            path = Path(folder) / file_name
            try:
                real = path.resolve()
                if real_tools not in real.parents or not real.is_file():
                    continue
            except OSError:
                continue
            found.append(
                {
                    "name": path.relative_to(tools).as_posix(),
                    "kind": KINDS.get(suffix, suffix.lstrip(".")),
                    "description": describe(real),
                }
            )
            if len(found) >= MAX_TOOLS:
                return sorted(found, key=lambda t: t["name"])
    return sorted(found, key=lambda t: t["name"])


def describe(script: Path) -> str:
    """The first paragraph of a script's docstring or leading comment block ("" if none)."""
    try:
        with script.open("rb") as handle:
            head = handle.read(HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""
    text = ""
    if script.suffix.lower() == ".py":
        text = _docstring(head)
    if not text:
        text = _leading_comments(head)
    return _first_paragraph(text)


def _docstring(source: str) -> str:
    # Only the first statement matters; parsing a cut file would fail, so parse the first
    # statement's text when the whole head does not parse.
    try:
        return ast.get_docstring(ast.parse(source)) or ""
    except (SyntaxError, ValueError):
        match = re.match(r'\s*(?:#[^\n]*\n\s*)*[rRuU]?("""|\'\'\')(.*?)\1', source, re.DOTALL)
        return match.group(2).strip() if match else ""


def _leading_comments(source: str) -> str:
    lines = source.splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    block: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped and not block:
            continue
        if not stripped.startswith("#"):
            break
        if re.match(r"#\s*-\*-.*-\*-", stripped) or stripped.startswith("# noqa"):
            continue  # coding lines and the like describe nothing
        block.append(stripped.lstrip("#").strip())
    return "\n".join(block).strip()


def _first_paragraph(text: str) -> str:
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    joined = " ".join(paragraph.split())
    if len(joined) > MAX_DESCRIPTION_CHARS:
        joined = joined[: MAX_DESCRIPTION_CHARS - 3].rstrip() + "..."
    return joined


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
