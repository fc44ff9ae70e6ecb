"""The service token file: created once, 0600, atomically; read back as is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from roscoe.errors import UsageError
from roscoe.runner.token import ensure_token, read_token


def test_ensure_token_creates_a_private_token_once(tmp_path: Path) -> None:
    where = tmp_path / "data" / "service-token"
    first = ensure_token(where)
    assert len(first) >= 40
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert ensure_token(where) == first
    assert read_token(where) == first
    assert [p.name for p in where.parent.iterdir()] == ["service-token"]  # no temp files left


def test_the_token_sits_in_a_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    monkeypatch.setenv("ROSCOE_DATA_DIR", str(data))
    ensure_token(data / "service-token")
    # Even a token chowned to uid 1000 (for the service) is out of reach of host users then.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_ensure_token_hands_the_file_to_an_owner(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("chown to another uid needs root")
    where = tmp_path / "service-token"
    ensure_token(where, owner=(1000, 1000))
    assert (where.stat().st_uid, where.stat().st_gid) == (1000, 1000)


def test_read_token_explains_a_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no service token"):
        read_token(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="empty"):
        read_token(empty)
