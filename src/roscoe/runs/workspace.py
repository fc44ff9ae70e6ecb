"""The workspace: a root holding one folder per case (`projects/`) and the scripts (`Tools/`).

Every case and script name that reaches a container goes through `case_dir()` or
`script_path()` first: they refuse anything that could name a folder outside the workspace
(absolute paths, `..`, symlinks that lead out), so a run can only ever see one case.

A case name is ONE folder name, and the real case folder must sit directly in the real
projects folder. A name with several parts (`caseA/sub`) would pass through a folder a
script can write (its own case), and that script could swap `sub` for a symlink to `/`
between the check and the mount. projects/ itself is never writable from inside a run, so a
case folder (or a symlink to one, e.g. projects/alias -> projects/real) cannot be swapped by
a script; and the path that is mounted is the resolved real one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from roscoe.errors import UsageError

if TYPE_CHECKING:
    from roscoe.config.settings import Settings

# What a script's file name ending means: the interpreter the container runs it with.
# Anything else is refused, so a data file is never executed by accident.
INTERPRETERS: dict[str, list[str]] = {
    ".py": ["python3"],
    ".sh": ["sh"],
}

# The longest case or script name (each part of a script's path): what file systems hold in
# one name (NAME_MAX is 255 bytes), counted in characters and in UTF-8 bytes alike. The
# execution service refuses longer names with the same limit.
MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class Workspace:
    """A workspace root and the names of its two folders.

    `host_root` is where the same root is on the engine's host, when roscoe runs inside a
    container (the execution service sees the workspace at /workspace, but bind mounts for
    the containers it starts must name host paths).
    """

    root: Path
    projects: str = "projects"
    tools: str = "Tools"
    host_root: Path | None = None

    def __post_init__(self) -> None:
        for key, value in (("projects_dir", self.projects), ("tools_dir", self.tools)):
            problem = folder_name_problem(value)
            if problem:
                raise UsageError(
                    f"{key} '{value}' {problem}",
                    hint=f"{key} must be one plain folder name inside the workspace",
                )
        if self.projects == self.tools:
            raise UsageError(
                f"projects_dir and tools_dir are both '{self.projects}'",
                hint="cases and scripts need two different folders (e.g. projects and Tools)",
            )

    @classmethod
    def from_settings(cls, settings: Settings, flag: str | None = None) -> Workspace:
        """The workspace named by --workspace, ROSCOE_WORKSPACE, the config, or the default.

        The default workspace (under the data dir) is created on first use; one named by
        the user must already exist.
        """
        found = settings.workspace(flag)
        root = Path(found.value)
        if found.source == "default":
            for sub in (settings.get("projects_dir"), settings.get("tools_dir")):
                (root / sub).mkdir(parents=True, exist_ok=True)
        elif not _is_folder(root, found.source):
            raise UsageError(
                f"workspace {root} ({found.source}) is not a folder",
                hint="pass --workspace DIR naming a folder with projects/ and Tools/ in it",
            )
        return cls(
            root=root.resolve(),
            projects=settings.get("projects_dir"),
            tools=settings.get("tools_dir"),
        )

    @property
    def projects_dir(self) -> Path:
        return self.root / self.projects

    @property
    def tools_dir(self) -> Path:
        return self.root / self.tools

    def case_dir(self, case: str) -> Path:
        """The real path of a case folder; UsageError (2) when the name is not a safe case.

        The case is one folder name, and its real folder (symlinks resolved) must be directly
        inside the real projects folder: the returned path is what gets mounted.
        """
        check_case_name(case)
        found = _inside(self.projects_dir, case, "case")
        if not found.is_dir():
            if found.exists():
                raise UsageError(f"case '{case}' is not a folder", hint=self._cases_hint())
            raise UsageError(f"case '{case}' does not exist", hint=self._cases_hint())
        if found.parent != self.projects_dir.resolve():
            raise UsageError(
                f"the case '{case}' leads to {found}, which is not directly in "
                f"{self.projects_dir} (through a symlink)",
                hint=self._cases_hint(),
            )
        return found

    def script_path(self, script: str) -> Path:
        """The real path of a script in Tools; UsageError (2) when unsafe, absent or unknown."""
        found = _inside(self.tools_dir, script, "script")
        if not found.is_file():
            if found.exists():
                raise UsageError(f"script '{script}' is not a file", hint=self._tools_hint())
            raise UsageError(f"script '{script}' does not exist", hint=self._tools_hint())
        interpreter(found)  # refuse kinds of script we cannot run before anything starts
        return found

    def host_path(self, local: Path) -> Path:
        """Where `local` (a path under root) is on the engine's host, for bind mounts."""
        if self.host_root is None:
            return local
        try:
            relative = Path(local).relative_to(self.root.resolve())
        except ValueError:
            raise UsageError(
                f"{local} is outside the workspace {self.root}",
                hint="keep projects/ and Tools/ inside the workspace when it is mounted",
            ) from None
        return self.host_root / relative

    def in_container(self, script: Path) -> str:
        """The path of a validated script under /tools inside the run's container."""
        relative = script.relative_to(self.tools_dir.resolve())
        return str(PurePosixPath("/tools", *relative.parts))

    def _cases_hint(self) -> str:
        return f"cases are the folders in {self.projects_dir}"

    def _tools_hint(self) -> str:
        return f"scripts are the files in {self.tools_dir}"


def _is_folder(root: Path, source: str) -> bool:
    """Whether `root` is a folder; UsageError (2) when it may not even be looked at."""
    try:
        return root.is_dir()
    except PermissionError as exc:
        # A FUSE mount without allow_other made by another user is closed even to root.
        raise UsageError(
            f"workspace {root} ({source}) cannot be read: {exc.strerror}",
            hint="`roscoe doctor` says why (a bucket mounted with FUSE needs -o allow_other)",
        ) from exc


def interpreter(script: Path) -> list[str]:
    """The command that runs a script, from its file name ending; UsageError otherwise."""
    command = INTERPRETERS.get(script.suffix.lower())
    if command is None:
        kinds = ", ".join(f"{k} ({v[0]})" for k, v in INTERPRETERS.items())
        raise UsageError(
            f"cannot run '{script.name}': only {kinds} scripts are supported",
            hint="give the script one of those endings",
        )
    return command


def folder_name_problem(name: object) -> str | None:
    """Why `name` is not one plain folder name, or None when it is."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains control characters"
    if "/" in name or "\\" in name:
        return "contains '/' or '\\' (it must be one folder name)"
    if name in (".", ".."):
        return f"is '{name}'"
    return None


def check_case_name(case: str) -> None:
    """UsageError (2) unless `case` is one folder name (see the module's docstring)."""
    if not isinstance(case, str) or not case.strip():
        raise UsageError("the case name is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in case):
        raise UsageError("the case name contains a NUL byte or control characters")
    if os.path.isabs(case) or case.startswith("~"):
        raise UsageError(
            f"the case name '{case}' is an absolute path",
            hint="name a folder in the workspace's projects/",
        )
    if ".." in PurePosixPath(case.replace("\\", "/")).parts:
        raise UsageError(f"the case name '{case}' contains '..'")
    if case == ".":
        raise UsageError("the case name '.' names the projects folder itself")
    if "/" in case or "\\" in case:
        raise UsageError(
            f"the case name '{case}' contains '/' or '\\'",
            hint="a case is one folder directly in the workspace's projects/",
        )
    if case.startswith("-"):
        raise UsageError(f"the case name '{case}' starts with '-'")
    _check_length(case, "case")


def _check_length(name: str, what: str) -> None:
    """UsageError (2) when a part of `name` is longer than a file name can be."""
    for part in PurePosixPath(name.replace("\\", "/")).parts:
        size = max(len(part), len(part.encode("utf-8", "surrogateescape")))
        if size > MAX_NAME_CHARS:
            unit = "characters long" if len(part) > MAX_NAME_CHARS else "bytes long in UTF-8"
            raise UsageError(
                f"the {what} name '{_clip(part)}' is {size} {unit}; the limit is {MAX_NAME_CHARS}",
                hint=f"a {what} name is a file name: at most {MAX_NAME_CHARS} characters",
            )


def _clip(text: str, keep: int = 40) -> str:
    return text if len(text) <= keep else f"{text[:keep]}..."


def _inside(base: Path, name: str, what: str) -> Path:
    """`base/name` with symlinks resolved, refusing names that could leave `base`."""
    if not name or not name.strip():
        raise UsageError(f"the {what} name is empty")
    if "\x00" in name:
        raise UsageError(f"the {what} name contains a NUL byte")
    if os.path.isabs(name) or name.startswith("~"):
        raise UsageError(
            f"the {what} name '{name}' is an absolute path",
            hint=f"name the {what} relative to {base}",
        )
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise UsageError(f"the {what} name '{name}' contains '..'")
    _check_length(name, what)
    if not base.is_dir():
        raise UsageError(
            f"{base} does not exist",
            hint=f"create it, or point the workspace somewhere holding {base.name}/",
        )
    real_base = base.resolve()
    try:
        found = (real_base / name).resolve()
        found.exists()  # the whole path too long, a loop of symlinks: said here, as input
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"the {what} name '{_clip(name)}' cannot be used: {reason}") from None
    if found == real_base or real_base not in found.parents:
        raise UsageError(
            f"the {what} '{name}' leads outside {base} (through a symlink)"
            if found != real_base
            else f"the {what} name '{name}' names {base} itself",
            hint=f"a {what} must be inside {base}",
        )
    return found
