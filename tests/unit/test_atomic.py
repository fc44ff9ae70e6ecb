"""config.atomic: the one writer of files that must never be seen half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from roscoe.config import atomic
from roscoe.config.atomic import write_atomic


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_the_mode_is_the_one_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    old = os.umask(0o077)
    try:
        assert write_atomic(target, "a = 1\n", mode=0o644) is True
    finally:
        os.umask(old)
    assert target.read_text() == "a = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


def test_it_replaces_a_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old")
    write_atomic(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the default: private
    assert leftovers(tmp_path) == []


def test_without_replace_an_existing_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "service-token"
    assert write_atomic(target, "first\n", replace=False) is True
    assert write_atomic(target, "second\n", replace=False) is False
    assert target.read_text() == "first\n"
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "settings.json"
    target.write_text("old")

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_the_file_and_then_its_folder_reach_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    write_atomic(tmp_path / "x", "data")
    assert synced == ["file", "folder"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_the_owner_is_set_before_the_file_appears(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_atomic(target, "{}", owner=(1000, 1000))
    info = target.stat()
    assert (info.st_uid, info.st_gid) == (1000, 1000)
