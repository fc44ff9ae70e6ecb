"""The service's view of who may call it: the admin token and the scoped-token file.

`TokenBook.principal(header)` turns an Authorization header into a Principal, or raises
Unauthorized with a one-line reason. The token file is looked at (one stat) on every call and
read again when it changed, so a new or revoked token counts from the next request, with no
restart. Every comparison is constant-time; the presented token is hashed and never kept.
"""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path

from roscoe.access.principal import ADMIN_PRINCIPAL, Principal
from roscoe.access.tokens import TokenEntry, now, parse_file, token_digest

WRONG = "missing or wrong bearer token"


class Unauthorized(Exception):
    """401: no token, a wrong one, or one that expired or was revoked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bearer(header: str | None) -> str | None:
    """The credential of a `Bearer` Authorization header, or None."""
    if not header:
        return None
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


class TokenBook:
    def __init__(self, admin_token: str, tokens_file: Path | None) -> None:
        self._admin = admin_token.encode("utf-8")
        self._path = tokens_file
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[TokenEntry] = []
        self.problem: str | None = None  # why the file could not be read, for the log

    def principal(self, header: str | None) -> Principal:
        """Who the header names; Unauthorized when nobody (or nobody any more)."""
        credential = bearer(header)
        if credential is None or not self._admin:
            raise Unauthorized(WRONG)
        presented = credential.encode("utf-8")
        if hmac.compare_digest(presented, self._admin):
            return ADMIN_PRINCIPAL
        digest = token_digest(credential).encode("ascii")
        found: TokenEntry | None = None
        for entry in self._current():  # every entry is compared: the time says nothing
            if hmac.compare_digest(digest, entry.sha256.encode("ascii", "replace")):
                found = entry
        if found is None:
            raise Unauthorized(WRONG)
        state = found.state(now())
        if state == "revoked":
            raise Unauthorized(f"token '{found.name}' was revoked at {found.revoked}")
        if state == "expired":
            raise Unauthorized(f"token '{found.name}' expired at {found.expires}")
        return found.principal()

    def _current(self) -> list[TokenEntry]:
        """The entries, read again when the file's stat changed since the last look."""
        if self._path is None:
            return []
        with self._lock:
            try:
                info = os.stat(self._path)
            except FileNotFoundError:
                self._seen, self._entries, self.problem = None, [], None
                return []
            except OSError as exc:
                self.problem = f"cannot stat {self._path}: {exc.strerror}"
                return self._entries
            seen = (info.st_mtime_ns, info.st_size, info.st_ino)
            if seen != self._seen:
                try:
                    self._entries = parse_file(self._path.read_bytes())
                    self.problem = None
                except (OSError, ValueError, UnicodeDecodeError) as exc:
                    # A broken file admits no scoped token at all (the admin token still works).
                    self._entries = []
                    self.problem = f"the token file {self._path} is unusable: {exc}"
                self._seen = seen
            return self._entries
