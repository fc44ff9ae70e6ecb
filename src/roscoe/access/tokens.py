"""The scoped-token file: `<data dir>/access/tokens.json`, 0600, hashes only.

A token is `rsc_` and 43 random URL-safe characters (256 bits): shown once when made, and
stored only as its sha256 (a slow hash buys nothing against a secret that long). Revoked
tokens stay in the file, marked, so a name always means one token in the run records; a
revoked name cannot be given to a new token.

Host side (`roscoe token ...`); the service reads the same file through `access.book`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from roscoe.access.principal import ADMIN, EVERYTHING, Principal
from roscoe.config import paths
from roscoe.errors import OperationFailed, UsageError

TOKEN_PREFIX = "rsc_"  # noqa: S105 - a prefix, so scanners and redaction know a token by sight
FILE_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GLOB_CHARS = 255


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class TokenEntry:
    """One scoped token as stored: its rules and its hash, never the token."""

    name: str
    sha256: str
    cases: list[str] = field(default_factory=lambda: list(EVERYTHING))
    tools: list[str] = field(default_factory=lambda: list(EVERYTHING))
    can_apply: bool = False
    created: str = ""
    expires: str | None = None
    revoked: str | None = None

    def state(self, at: datetime | None = None) -> str:
        """ "active", "expired" or "revoked"."""
        if self.revoked:
            return "revoked"
        if self.expires and parse_iso(self.expires) <= (at or now()):
            return "expired"
        return "active"

    def principal(self) -> Principal:
        return Principal(
            self.name, cases=tuple(self.cases), tools=tuple(self.tools), can_apply=self.can_apply
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "cases": self.cases,
            "tools": self.tools,
            "can_apply": self.can_apply,
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
        }

    def public(self) -> dict[str, Any]:
        """What `token list --json` shows: everything but the hash."""
        shown = self.to_json()
        del shown["sha256"]
        shown["state"] = self.state()
        return shown

    @classmethod
    def from_json(cls, data: Any) -> TokenEntry:
        if not isinstance(data, dict):
            raise ValueError("an entry is not an object")
        name, digest = data.get("name"), data.get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise ValueError("an entry has no name or no hash")
        cases, tools = data.get("cases", ["*"]), data.get("tools", ["*"])
        for globs in (cases, tools):
            if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
                raise ValueError(f"token '{name}': cases and tools must be lists of globs")
        entry = cls(
            name=name,
            sha256=digest,
            cases=list(cases),
            tools=list(tools),
            can_apply=data.get("can_apply") is True,
            created=str(data.get("created") or ""),
            expires=_optional_time(data.get("expires"), name),
            revoked=_optional_time(data.get("revoked"), name),
        )
        return entry


def _optional_time(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"token '{name}': a time is not a string")
    parse_iso(value)  # ValueError when it is not a time
    return value


def parse_file(raw: bytes) -> list[TokenEntry]:
    """The entries of a token file; ValueError when it is not one."""
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        raise ValueError(f"not a version {FILE_VERSION} token file")
    tokens = data.get("tokens")
    if not isinstance(tokens, list):
        raise ValueError("'tokens' is not a list")
    return [TokenEntry.from_json(item) for item in tokens]


def load(path: Path | None = None) -> list[TokenEntry]:
    """Every token in the file ([] when there is none); UsageError when it is unreadable."""
    where = path or paths.tokens_file()
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot read the token file {where}: {exc.strerror}") from exc
    try:
        return parse_file(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"the token file {where} is malformed: {exc}",
            hint="restore it, or remove it (every scoped token is then gone)",
        ) from exc


def _owner() -> tuple[int, int] | None:
    """Under a root roscoe the service runs as the unprivileged user: it reads the file."""
    from roscoe.runs.host import container_user

    return container_user() if os.getuid() == 0 else None


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One writer at a time: read, change and write the file under this lock."""
    folder = paths.ensure_dir(paths.access_dir())
    owner = _owner()
    if owner is not None:
        os.chown(folder, *owner)
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _save(entries: Sequence[TokenEntry]) -> None:
    where = paths.tokens_file()
    text = json.dumps(
        {"version": FILE_VERSION, "tokens": [entry.to_json() for entry in entries]}, indent=2
    )
    fd, temp = tempfile.mkstemp(prefix=".tokens-", dir=where.parent)  # 0600 from the start
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        owner = _owner()
        if owner is not None:
            os.chown(temp, *owner)
        os.replace(temp, where)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a token name",
            hint="letters, digits, '.', '_' and '-', starting with a letter or digit; "
            "at most 64 characters",
        )
    if name.lower() == ADMIN:
        raise UsageError(
            f"'{name}' is the name of the service's own token",
            hint="choose another name",
        )


def _check_globs(globs: Sequence[str], option: str) -> list[str]:
    for glob in globs:
        if not glob.strip() or len(glob) > _GLOB_CHARS or any(ord(c) < 32 for c in glob):
            raise UsageError(f"{option} {glob!r}: not a glob", hint="e.g. 'acme-*' or 'report.py'")
    return list(globs) or list(EVERYTHING)


@dataclass(frozen=True)
class NewToken:
    entry: TokenEntry
    token: str  # shown once, never stored


def create(
    name: str,
    *,
    cases: Sequence[str] = (),
    tools: Sequence[str] = (),
    expires_in: timedelta | None = None,
    can_apply: bool = False,
) -> NewToken:
    """Make a token; UsageError (2) for a bad or taken name or glob. No --case (or --tool)
    means every case (or tool)."""
    check_name(name)
    case_globs = _check_globs(cases, "--case")
    tool_globs = _check_globs(tools, "--tool")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    made = now()
    entry = TokenEntry(
        name=name,
        sha256=token_digest(token),
        cases=case_globs,
        tools=tool_globs,
        can_apply=can_apply,
        created=iso(made),
        expires=iso(made + expires_in) if expires_in is not None else None,
    )
    with _locked():
        entries = load()
        for other in entries:
            if other.name.lower() != name.lower():
                continue
            if other.revoked:
                raise UsageError(
                    f"a token named '{other.name}' was revoked; runs are recorded under that name",
                    hint="choose another name",
                )
            raise UsageError(
                f"a token named '{other.name}' exists",
                hint=f"choose another name, or `roscoe token revoke {other.name}` first",
            )
        _save([*entries, entry])
    return NewToken(entry, token)


def revoke(name: str) -> tuple[TokenEntry, bool]:
    """Mark a token revoked: (its entry, False when it already was). UsageError when unknown."""
    with _locked():
        entries = load()
        for entry in entries:
            if entry.name == name:
                if entry.revoked:
                    return entry, False
                entry.revoked = iso(now())
                _save(entries)
                return entry, True
    names = ", ".join(e.name for e in entries) or "none yet"
    raise UsageError(f"no token named '{name}'", hint=f"tokens: {names}")


def ensure_readable_by_service() -> Path:
    """The access folder, present and handed to the service's user (for `server start`,
    which mounts it); the token file inside may not exist yet."""
    folder = paths.ensure_dir(paths.access_dir())
    owner = _owner()
    if owner is not None:
        try:
            os.chown(folder, *owner)
            if paths.tokens_file().exists():
                os.chown(paths.tokens_file(), *owner)
        except OSError as exc:
            raise OperationFailed(
                f"cannot hand {folder} to uid {owner[0]}: {exc.strerror}",
                hint="run roscoe as the owner of its data dir",
            ) from exc
    return folder
