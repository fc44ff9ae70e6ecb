"""Change tracking without an engine: a Tracker around changes made by the test itself.

Every scenario runs twice: with the kernel's events telling the after-walk where to look, and
with the full after-walk (inotify made unavailable), and both must say the same.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from roscoe.runs import changes, hashcache, tracking, watch
from roscoe.runs.tracking import Tracker

Change = Callable[[Path], None]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age(case: Path, seconds: float = 3600) -> None:
    """Make every entry look old, so that none is 'racy'; ctime cannot be set, so the racy
    window is patched instead (see the fixture)."""
    then = time.time() - seconds
    for folder, _dirs, files in os.walk(case):
        for name in files:
            os.utime(Path(folder) / name, (then, then), follow_symlinks=False)


@pytest.fixture
def case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small case: text, binary, nested folders and a symlink leading out of it."""
    root = tmp_path / "case"
    (root / "notes" / "2024").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "same.txt").write_text("unchanged content\n")
    (root / "gone.txt").write_text("bye\n")
    (root / "photo.bin").write_bytes(bytes(range(256)) * 4)
    (root / "notes" / "2024" / "visit.md").write_text("# visit\n")
    (root / "outside").symlink_to(tmp_path)  # never followed
    age(root)
    # ctime is now; a zero racy window lets the tests see the steady state of a case whose
    # files are older than a clock tick.
    monkeypatch.setattr(changes, "RACY_NS", 0)
    return root


@pytest.fixture(params=["events", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":

        def unavailable() -> None:
            raise watch.Unavailable("turned off by the test")

        monkeypatch.setattr(watch, "CaseWatch", unavailable)  # tracking imports it when walking
    return str(request.param)


def track(case: Path, change: Change, mode: str | None = None, **kwargs: Any) -> dict[str, Any]:
    tracker = Tracker(case, str(case), **kwargs)
    tracker.begin()
    tracker.ready()
    change(case)
    found = tracker.result()
    if mode is not None and found.get("tracked"):
        assert tracker.how == mode
    return found


def paths(found: dict[str, Any], key: str) -> list[str]:
    return [item["path"] for item in found[key]]


def test_create_modify_delete_rename_nested_binary(case: Path, mode: str) -> None:
    payload = os.urandom(5000) + b"\x00\xff"

    def change(root: Path) -> None:
        (root / "a.txt").write_text("alpha, changed\n")
        (root / "same.txt").write_text("unchanged content\n")  # same bytes again
        (root / "gone.txt").unlink()
        (root / "notes" / "2024" / "visit.md").rename(root / "notes" / "visit-renamed.md")
        (root / "out" / "deep").mkdir(parents=True)
        (root / "out" / "deep" / "blob.bin").write_bytes(payload)

    found = track(case, change, mode="walk")  # new folders: the events cannot vouch
    assert found["tracked"] is True
    assert paths(found, "created") == [
        "notes/visit-renamed.md",
        "out",
        "out/deep",
        "out/deep/blob.bin",
    ]
    assert paths(found, "modified") == ["a.txt"]
    assert paths(found, "deleted") == ["gone.txt", "notes/2024/visit.md"]
    created = {item["path"]: item for item in found["created"]}
    assert created["out/deep/blob.bin"]["sha256"] == sha(payload)
    assert created["out/deep/blob.bin"]["size"] == len(payload)
    assert created["out"]["type"] == "dir"
    assert created["notes/visit-renamed.md"]["sha256"] == sha(b"# visit\n")
    modified = found["modified"][0]
    assert modified["sha256"] == sha((case / "a.txt").read_bytes())
    assert modified["sha256_before"] == sha(b"alpha\n")
    assert (modified["size_before"], modified["size"]) == (6, 15)
    deleted = {item["path"]: item for item in found["deleted"]}
    assert deleted["gone.txt"]["size"] == 4
    assert deleted["gone.txt"]["sha256"] == sha(b"bye\n")


def test_nothing_changed(case: Path, mode: str) -> None:
    found = track(case, lambda root: None, mode)
    assert found == {"tracked": True, "created": [], "modified": [], "deleted": []}


def test_reading_every_file_changes_nothing(case: Path, mode: str) -> None:
    def read_all(root: Path) -> None:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                (Path(folder) / name).read_bytes()

    found = track(case, read_all, mode)
    assert found == {"tracked": True, "created": [], "modified": [], "deleted": []}


def test_same_content_with_another_mtime_is_not_listed(case: Path, mode: str) -> None:
    def rewrite(root: Path) -> None:
        data = (root / "photo.bin").read_bytes()
        (root / "photo.bin").write_bytes(data)
        os.utime(root / "photo.bin", (1, 1))

    assert paths(track(case, rewrite, mode), "modified") == []


def test_permission_change_is_a_modification(case: Path, mode: str) -> None:
    found = track(case, lambda root: (root / "a.txt").chmod(0o600), mode)
    (item,) = found["modified"]
    assert (item["path"], item["mode_before"], item["mode"]) == ("a.txt", "0644", "0600")
    assert item["sha256"] == item["sha256_before"]


def test_same_size_same_mtime_rewrite_is_caught(case: Path, mode: str) -> None:
    """A script that puts the mtime back cannot hide a write: ctime (and the events) tell."""

    def sneaky(root: Path) -> None:
        before = os.stat(root / "a.txt")
        (root / "a.txt").write_text("ALPHA\n")  # same size
        os.utime(root / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))

    assert paths(track(case, sneaky, mode), "modified") == ["a.txt"]


def test_write_through_a_hard_link_then_removed(case: Path, mode: str) -> None:
    """The write is reported under the link's name only: tracking must look at a.txt anyway."""

    def through_link(root: Path) -> None:
        os.link(root / "a.txt", root / "tmp-link")
        with open(root / "tmp-link", "a") as out:
            out.write("appended\n")
        os.unlink(root / "tmp-link")

    found = track(case, through_link, mode="walk")  # the events cannot vouch: a full walk
    assert paths(found, "modified") == ["a.txt"]
    assert paths(found, "created") == []


def test_write_through_a_hard_link_in_a_new_folder(case: Path, mode: str) -> None:
    def through_link(root: Path) -> None:
        (root / "fresh").mkdir()
        os.link(root / "a.txt", root / "fresh" / "link")
        with open(root / "fresh" / "link", "a") as out:
            out.write("appended\n")
        os.unlink(root / "fresh" / "link")

    found = track(case, through_link, mode="walk")
    assert paths(found, "modified") == ["a.txt"]
    assert paths(found, "created") == ["fresh"]


def test_new_files_in_existing_folders_need_no_full_walk(case: Path, mode: str) -> None:
    def change(root: Path) -> None:
        (root / "notes" / "2024" / "new.md").write_text("new\n")
        (root / "a.txt").rename(root / "notes" / "a.txt")

    found = track(case, change, mode)
    assert paths(found, "created") == ["notes/2024/new.md", "notes/a.txt"]
    assert paths(found, "deleted") == ["a.txt"]


def test_write_through_a_memory_map(case: Path, mode: str) -> None:
    def mapped(root: Path) -> None:
        fd = os.open(root / "photo.bin", os.O_RDWR)
        region = mmap.mmap(fd, 0)
        os.close(fd)  # written after its descriptor is closed: no modify event at all
        region[0:4] = b"ABCD"
        region.flush()
        region.close()

    found = track(case, mapped, mode)
    assert paths(found, "modified") == ["photo.bin"]
    assert found["modified"][0]["sha256"] == sha((case / "photo.bin").read_bytes())


def test_a_file_becomes_a_folder_and_a_symlink_changes(case: Path, mode: str) -> None:
    def change(root: Path) -> None:
        (root / "gone.txt").unlink()
        (root / "gone.txt").mkdir()
        (root / "outside").unlink()
        (root / "outside").symlink_to("/etc")

    found = track(case, change, mode="walk")  # a folder made
    assert paths(found, "deleted") == ["gone.txt"]
    assert [(i["path"], i["type"]) for i in found["created"]] == [("gone.txt", "dir")]
    (link,) = found["modified"]
    assert (link["path"], link["type"], link["target"]) == ("outside", "symlink", "/etc")


def test_a_renamed_folder_is_deleted_and_created(case: Path, mode: str) -> None:
    def change(root: Path) -> None:
        (root / "notes").rename(root / "archive")
        (root / "archive" / "2024" / "late.md").write_text("late\n")

    found = track(case, change, mode)  # moved, not made: its events were watched
    assert paths(found, "deleted") == ["notes", "notes/2024", "notes/2024/visit.md"]
    assert paths(found, "created") == [
        "archive",
        "archive/2024",
        "archive/2024/late.md",
        "archive/2024/visit.md",
    ]


def test_symlinks_are_never_followed(case: Path, tmp_path: Path, mode: str) -> None:
    def change(root: Path) -> None:
        (tmp_path / "elsewhere.txt").write_text("not in the case\n")

    assert track(case, change, mode)["created"] == []


def test_hashes_come_from_the_cache_on_the_next_run(case: Path) -> None:
    track(case, lambda root: (root / "a.txt").write_text("first\n"))
    second = Tracker(case, str(case))
    second.begin()
    second.ready()
    assert second._before is not None
    assert second._before.hashed_files <= 1  # at most the file the first run changed


def test_off_says_so(case: Path) -> None:
    found = track(case, lambda root: (root / "a.txt").unlink(), enabled=False)
    assert found == {"tracked": False, "reason": tracking.OFF_REASON}


def test_too_large_says_so(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_ENTRIES", 3)
    found = track(case, lambda root: None)
    assert found["tracked"] is False
    assert "more than 3 files and folders" in found["reason"]


def test_over_the_hash_budget_the_record_says_so(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "BEFORE_HASH_BUDGET_S", -1.0)
    found = track(case, lambda root: (root / "same.txt").write_text("unchanged content\n"))
    assert "not hashed before the run" in found["note"]
    # Without the hash from before, a same-content rewrite cannot be told from a change.
    assert found["modified"][0]["sha256_before"] is None


def test_cache_round_trip(case: Path, tmp_path: Path) -> None:
    snapshot = changes.walk(case)
    hashcache.fill_hashes(snapshot, {})
    where = tmp_path / "cache.json"
    where.write_bytes(hashcache.cache_text(snapshot))
    loaded = hashcache.load_cache(where)
    assert loaded["a.txt"][4] == sha(b"alpha\n")
    assert hashcache.load_cache(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert hashcache.load_cache(tmp_path / "bad.json") == {}


def test_watch_reports_paths(tmp_path: Path) -> None:
    try:
        watcher = watch.CaseWatch()
    except watch.Unavailable as exc:
        pytest.skip(str(exc))
    (tmp_path / "sub").mkdir()
    watcher.add(str(tmp_path), "")
    watcher.add(str(tmp_path / "sub"), "sub")
    (tmp_path / "sub" / "x.txt").write_text("x")
    (tmp_path / "new").mkdir()
    touched = watcher.touched()
    watcher.close()
    assert "sub/x.txt" in touched.written
    assert "sub/x.txt" in touched.appeared
    assert touched.new_folders == {"new"}
