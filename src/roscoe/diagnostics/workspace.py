"""`roscoe doctor`'s look at the workspace: there, laid out, on which file system, readable by
the engine, and writable by the user runs run as. Returns facts and checks; never prints.

The engine reads the workspace as its own uid (root for a rootful engine, the user for a
rootless one); a run writes its case folder as the run user (`runs.host.container_user`). A
bind mount hands the container the case folder itself, so the write test opens the folder
first, then becomes the run user: the folders above it do not matter, as in a real run.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roscoe.diagnostics.checks import Check, CheckStatus
from roscoe.diagnostics.mounts import Mount, mount_of

DOCS = "docs/cloud-vm.md"
_PROBE_NAME = ".roscoe-doctor-probe"


@dataclass
class WorkspaceFacts:
    path: str
    source: str
    projects_dir: str
    tools_dir: str
    exists: bool = False
    readable: bool = False
    error: str | None = None
    has_projects: bool = False
    has_tools: bool = False
    cases: int = 0
    mount: Mount | None = None
    engine_uid: int | None = None
    engine_can_read: bool | None = None
    run_user: str = ""
    case_tried: str | None = None
    run_user_can_write: bool | None = None
    write_error: str | None = None
    run_user_can_read_tools: bool | None = None
    tools_error: str | None = None
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "exists": self.exists,
            "readable": self.readable,
            "error": self.error,
            "projects_dir": self.projects_dir,
            "tools_dir": self.tools_dir,
            "has_projects": self.has_projects,
            "has_tools": self.has_tools,
            "cases": self.cases,
            "file_system": self.mount.to_json() if self.mount else None,
            "engine_uid": self.engine_uid,
            "engine_can_read": self.engine_can_read,
            "run_user": self.run_user,
            "case_tried": self.case_tried,
            "run_user_can_write": self.run_user_can_write,
            "write_error": self.write_error,
            "run_user_can_read_tools": self.run_user_can_read_tools,
            "tools_error": self.tools_error,
        }


def _remount_hint(mount: Mount) -> str:
    user = mount.mount_uid not in (None, 0)
    extra = " (a mount made by a user also needs `user_allow_other` in /etc/fuse.conf)"
    return (
        f"remount it with `-o allow_other` ({mount.fuse_name}: e.g. "
        f"`{_example_mount(mount)}`){extra if user else ''}; see {DOCS}"
    )


def _example_mount(mount: Mount) -> str:
    if mount.fuse_name == "gcsfuse":
        return f"gcsfuse -o allow_other --implicit-dirs BUCKET {mount.mount_point}"
    if mount.fuse_name == "s3fs":
        return f"s3fs BUCKET {mount.mount_point} -o allow_other"
    return f"mount ... -o allow_other {mount.mount_point}"


def _fuse_words(mount: Mount) -> str:
    who = "unknown uid" if mount.mount_uid is None else f"uid {mount.mount_uid}"
    where = f"{mount.fs_type} at {mount.mount_point}"
    return f"a FUSE mount ({where}) made by {who} without allow_other"


def workspace_facts(
    path: Path,
    source: str,
    projects_dir: str,
    tools_dir: str,
    *,
    engine_uid: int | None,
    run_user: tuple[int, int],
    mounts: list[Mount] | None = None,
) -> WorkspaceFacts:
    """Everything doctor says about the workspace, with its checks in `checks`."""
    facts = WorkspaceFacts(str(path), source, projects_dir, tools_dir)
    facts.engine_uid = engine_uid
    facts.run_user = f"{run_user[0]}:{run_user[1]}"
    facts.mount = mount_of(path, mounts)
    facts.checks.append(_layout_check(facts, path))
    facts.checks.append(_file_system_check(facts))
    facts.checks.append(_engine_check(facts))
    facts.checks.append(_run_user_check(facts, path, run_user))
    return facts


def _layout_check(facts: WorkspaceFacts, path: Path) -> Check:
    problem = _stat_problem(facts, path)
    if problem is not None:
        return problem
    facts.has_projects = (path / facts.projects_dir).is_dir()
    facts.has_tools = (path / facts.tools_dir).is_dir()
    if facts.has_projects:
        with contextlib.suppress(OSError):
            facts.cases = sum(1 for e in os.scandir(path / facts.projects_dir) if e.is_dir())
    folders = ((facts.projects_dir, facts.has_projects), (facts.tools_dir, facts.has_tools))
    missing = [f"{name}/" for name, there in folders if not there]
    if missing:
        return Check(
            "workspace",
            CheckStatus.FAIL,
            f"{path} ({facts.source}) has no {' and no '.join(missing)}",
            f"create {' and '.join(missing)} in it: cases are folders in "
            f"{facts.projects_dir}/, scripts are files in {facts.tools_dir}/",
        )
    return Check(
        "workspace",
        CheckStatus.OK,
        f"{path} ({facts.source}): {facts.cases} case folder{'' if facts.cases == 1 else 's'} "
        f"in {facts.projects_dir}/, "
        f"scripts in {facts.tools_dir}/",
    )


def _stat_problem(facts: WorkspaceFacts, path: Path) -> Check | None:
    """The check when the workspace is absent, unreadable or not a folder; else None."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if facts.source == "default":
            return Check("workspace", CheckStatus.OK, f"{path} (default) is created on first use")
        return Check(
            "workspace",
            CheckStatus.FAIL,
            f"{path} ({facts.source}) does not exist",
            "create it with projects/ and Tools/ in it, or point --workspace / "
            "ROSCOE_WORKSPACE at the right folder",
        )
    except OSError as exc:
        facts.exists = True  # it is there, but we may not look
        facts.error = exc.strerror or str(exc)
        detail = f"{path} ({facts.source}) cannot be read: {facts.error}"
        mount = facts.mount
        if mount is not None and not mount.readable_by(os.getuid()):
            detail += f"; it is {_fuse_words(mount)}, so only that uid may read it"
            return Check("workspace", CheckStatus.FAIL, detail, _remount_hint(mount))
        return Check("workspace", CheckStatus.FAIL, detail, "fix its permissions")
    facts.exists = True
    if not stat.S_ISDIR(info.st_mode):
        return Check("workspace", CheckStatus.FAIL, f"{path} ({facts.source}) is not a folder")
    facts.readable = True
    return None


def _file_system_check(facts: WorkspaceFacts) -> Check:
    mount = facts.mount
    if mount is None:
        return Check("workspace file system", CheckStatus.OK, "unknown (no /proc/self/mountinfo)")
    if not mount.fuse:
        return Check(
            "workspace file system",
            CheckStatus.OK,
            f"{mount.fs_type} (mounted at {mount.mount_point})",
        )
    allow = "allow_other" if mount.allow_other else "no allow_other"
    who = "" if mount.mount_uid is None else f", mounted by uid {mount.mount_uid}"
    return Check(
        "workspace file system",
        CheckStatus.OK,
        f"FUSE: {mount.fuse_name} ({mount.fs_type}) at {mount.mount_point}{who}, {allow}",
        f"a bucket: no hard links, folder renames are not atomic, listing big cases is slow; "
        f"see {DOCS}",
    )


def _engine_check(facts: WorkspaceFacts) -> Check:
    mount = facts.mount
    who = "the engine" if facts.engine_uid is None else f"the engine (uid {facts.engine_uid})"
    uid = 0 if facts.engine_uid is None else facts.engine_uid
    if mount is not None and not mount.readable_by(uid):
        facts.engine_can_read = False
        return Check(
            "workspace engine access",
            CheckStatus.FAIL,
            f"{who} cannot read the workspace: it is {_fuse_words(mount)}, so nobody else "
            "may read it, not even root; every run fails to mount its case",
            _remount_hint(mount),
        )
    if not facts.exists:
        return Check("workspace engine access", CheckStatus.OK, "nothing to read yet")
    facts.engine_can_read = True if mount is not None else None
    return Check("workspace engine access", CheckStatus.OK, f"{who} may read it")


def _run_user_check(facts: WorkspaceFacts, path: Path, run_user: tuple[int, int]) -> Check:
    name = "workspace run user"
    uid, gid = run_user
    cases: list[str] = []
    if facts.has_projects:
        with contextlib.suppress(OSError):
            cases = sorted(e.name for e in os.scandir(path / facts.projects_dir) if e.is_dir())
    if not cases:
        if not facts.exists:
            return Check(name, CheckStatus.OK, "no case folder to try")
        if not facts.readable:
            return Check(name, CheckStatus.WARN, "not tried: the workspace cannot be read")
        return Check(
            name,
            CheckStatus.WARN,
            f"no case folder in {facts.projects_dir}/ to try writing as uid {uid}",
        )
    facts.case_tried = cases[0]
    error = try_write_as(path / facts.projects_dir / cases[0], uid, gid)
    facts.run_user_can_write = error is None
    tools_error = try_read_as(path / facts.tools_dir, uid, gid) if facts.has_tools else None
    facts.run_user_can_read_tools = None if not facts.has_tools else tools_error is None
    if error is None and tools_error is None:
        return Check(
            name,
            CheckStatus.OK,
            f"uid {uid} (the runs' user) can write in case {cases[0]} and read {facts.tools_dir}/",
        )
    facts.write_error = error
    facts.tools_error = tools_error
    problems = []
    if error is not None:
        problems.append(f"cannot write in case {cases[0]}: {error}")
    if tools_error is not None:
        problems.append(f"cannot read {facts.tools_dir}/: {tools_error}")
    detail = f"uid {uid} (the runs' user) {'; '.join(problems)}"
    mount = facts.mount
    if mount is not None and not mount.readable_by(uid):
        detail += f"; the workspace is {_fuse_words(mount)}, so only that uid may use it"
    return Check(name, CheckStatus.FAIL, detail, _write_hint(mount, uid, gid))


def _write_hint(mount: Mount | None, uid: int, gid: int) -> str:
    if mount is not None and not mount.readable_by(uid):
        return _remount_hint(mount)
    if mount is not None and mount.fuse:
        return (
            f"the mount's owner and modes decide: mount with the runs' uid and gid "
            f"(s3fs: -o uid={uid},gid={gid}; gcsfuse: --uid {uid} --gid {gid}) or with "
            f"writable modes (s3fs: -o umask=0002; gcsfuse: --file-mode 664 --dir-mode 775); "
            f"see {DOCS}"
        )
    return (
        f"make the case folders writable and Tools/ readable by uid {uid}: "
        f"chown -R {uid}:{gid}, or chmod -R a+rwX the cases and a+rX Tools/"
    )


def try_write_as(folder: Path, uid: int, gid: int) -> str | None:
    """Create and remove a file in `folder` as uid:gid; None when that worked, else why not."""
    return _try_as(folder, uid, gid, _create_and_remove)


def try_read_as(folder: Path, uid: int, gid: int) -> str | None:
    """List `folder` as uid:gid; None when that worked, else why not."""
    return _try_as(folder, uid, gid, _list)


def _try_as(folder: Path, uid: int, gid: int, action: Callable[[int], int]) -> str | None:
    """`action` on `folder`, as uid:gid. The folder is opened first, as a bind mount hands it
    over; then a child process becomes uid:gid when that is not who we are (we are root)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        if (uid, gid) == (os.getuid(), os.getgid()):
            code = action(fd)
        elif os.getuid() != 0:
            return "not tried: only root may act as another user"
        else:
            code = _as_other_user(fd, uid, gid, action)
    finally:
        os.close(fd)
    if code == 0:
        return None
    return os.strerror(code) if code != _UNKNOWN else "the check could not run"


_UNKNOWN = 255


def _create_and_remove(fd: int) -> int:
    """0, or the errno of what failed."""
    name = f"{_PROBE_NAME}-{os.getpid()}"
    try:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd))
        os.unlink(name, dir_fd=fd)
    except OSError as exc:
        return exc.errno or _UNKNOWN
    return 0


def _list(fd: int) -> int:
    """0, or the errno. The folder is opened again ("." of fd) as whoever runs this: reading
    through `fd` itself would use the rights of the one who opened it."""
    try:
        again = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        try:
            os.listdir(again)
        finally:
            os.close(again)
    except OSError as exc:
        return exc.errno or _UNKNOWN
    return 0


def _as_other_user(fd: int, uid: int, gid: int, action: Callable[[int], int]) -> int:
    """action(fd) in a child process that is uid:gid; its result is the exit code."""
    pid = os.fork()
    if pid == 0:  # the child: system calls only, then _exit with the errno
        code = _UNKNOWN
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = action(fd)
        finally:
            os._exit(min(code, _UNKNOWN))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
