"""The execution service's bearer token, kept in one file on the host.

The host side creates it (`roscoe server start`) and mounts it read-only into the runner
container; the agent tool reads it to call the service. Created atomically with mode 0600 so
no other user ever sees a partial or world-readable token.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from roscoe.config import paths
from roscoe.config.atomic import write_atomic
from roscoe.errors import OperationFailed, UsageError


def ensure_token(path: Path, owner: tuple[int, int] | None = None) -> str:
    """The token in `path`, created first if absent (0600; chowned to `owner` when given).

    `owner` matters when roscoe runs as root: the service then runs as uid 1000 and must be
    able to read the file mounted into its container.
    """
    try:
        token = read_token(path)
    except UsageError:
        token = _create(path)
    if owner is not None:
        try:
            os.chown(path, *owner)
        except OSError as exc:
            raise OperationFailed(
                f"cannot hand the token file {path} to uid {owner[0]}: {exc.strerror}",
                hint="run roscoe as the owner of its data dir",
            ) from exc
    return token


def read_token(path: Path) -> str:
    """The token stored in `path`. UsageError (2) when it is missing, unreadable or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no service token at {path}", hint="`roscoe server start` creates it"
        ) from exc
    except OSError as exc:
        raise UsageError(
            f"cannot read the service token at {path}: {exc.strerror}",
            hint="check the file's owner and permissions (it should be 0600 and yours)",
        ) from exc
    if not token:
        raise UsageError(
            f"the service token file {path} is empty",
            hint="delete it; `roscoe server start` creates a new one",
        )
    return token


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    paths.ensure_dir(path.parent)  # 0700: no other host user reaches the token
    # 0600 from the first byte, whole or not at all; never replacing a token another process
    # created meanwhile (theirs is used then).
    if not write_atomic(path, token + "\n", mode=0o600, replace=False):
        return read_token(path)
    return token
