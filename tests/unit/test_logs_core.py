"""`roscoe logs` parsing and the engine's log frame decoding (no engine needed)."""

from __future__ import annotations

import itertools
import struct
from datetime import datetime, timezone

import pytest

from roscoe.config.settings import LOGS_READ_TIMEOUT_S
from roscoe.engine.fake import FakeEngine, Program
from roscoe.engine.protocols import ContainerSpec
from roscoe.engine.streams import LogFrames
from roscoe.errors import UsageError
from roscoe.runner import logs

NOW = 1_700_000_000.0


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


@pytest.mark.parametrize(
    ("text", "ago"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1.5m", 90)]
)
def test_since_durations(text: str, ago: int) -> None:
    assert logs.parse_since(text, now=NOW) == int(NOW - ago)


def test_since_rfc3339() -> None:
    expected = int(datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc).timestamp())
    assert logs.parse_since("2024-05-01T12:00:00Z") == expected
    assert logs.parse_since("2024-05-01T14:00:00.123456789+02:00") == expected


@pytest.mark.parametrize("bad", ["yesterday", "10", "10y", "-5m", "2024-13-01T00:00:00Z", ""])
def test_since_refuses_the_rest(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        logs.parse_since(bad, now=NOW)
    assert caught.value.exit_code == 2


def test_tail() -> None:
    assert logs.parse_tail("all") == "all"
    assert logs.parse_tail("5") == 5
    assert logs.parse_tail("0") == 0
    with pytest.raises(UsageError):
        logs.parse_tail("-1")
    with pytest.raises(UsageError):
        logs.parse_tail("many")


def test_read_timeout_from_environment() -> None:
    assert logs.read_timeout({}) == LOGS_READ_TIMEOUT_S
    assert logs.read_timeout({"ROSCOE_LOGS_READ_TIMEOUT": "2"}) == 2.0
    assert logs.read_timeout({"ROSCOE_LOGS_READ_TIMEOUT": "nonsense"}) == 60.0


def test_frames_split_anywhere_decode_the_same() -> None:
    stream = frame(1, b"one\n") + frame(1, b"two\n") + frame(2, b"oops\n") + frame(1, b"x" * 300)
    for cut in range(len(stream) + 1):
        decoder = LogFrames()
        pieces = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        out = b"".join(p for s, p in pieces if s == 1)
        err = b"".join(p for s, p in pieces if s == 2)
        assert out == b"one\ntwo\n" + b"x" * 300
        assert err == b"oops\n"


def test_frames_of_one_stream_are_joined() -> None:
    pieces = LogFrames().feed(frame(1, b"a") + frame(1, b"b") + frame(2, b"c") + frame(1, b"d"))
    assert pieces == [(1, b"ab"), (2, b"c"), (1, b"d")]


def test_no_runner_is_exit_1_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from roscoe.config.settings import Settings
    from roscoe.errors import OperationFailed

    with pytest.raises(OperationFailed) as caught:
        logs.runner_logs(FakeEngine(), Settings())
    assert caught.value.exit_code == 1
    assert "roscoe server start" in (caught.value.hint or "")


def test_tail_and_timeout_are_asked_of_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from roscoe.config.settings import Settings
    from roscoe.labels import LABEL_KIND, LABEL_MANAGED_BY

    monkeypatch.setenv("ROSCOE_LOGS_READ_TIMEOUT", "2")
    engine = FakeEngine()
    engine.add_image("roscoe-runner:dev")
    engine.programs["roscoe-runner:dev"] = Program(
        output=[("stdout", b"old\n"), ("stdout", b"hello\n")], until_stopped=True
    )
    ours = engine.create_container(
        ContainerSpec(
            image="roscoe-runner:dev",
            name="roscoe-runner",
            labels={LABEL_MANAGED_BY: "roscoe", LABEL_KIND: "server"},
        )
    )
    engine.start_container(ours)
    # Followed, the stream goes on while the runner runs: take what is there.
    pieces = itertools.islice(logs.runner_logs(engine, Settings(), follow=True, tail=1), 1)
    assert list(pieces) == [(1, b"hello\n")]
    asked = engine.log_requests[-1]
    assert asked["ref"] == ours
    assert asked["tail"] == 1
    assert asked["follow"] is True
    assert asked["read_timeout"] == 2.0
    assert asked["still_running"]() is True


def test_unchunk_split_anywhere() -> None:
    from roscoe.engine.streams import Unchunk

    body = b"4\r\none\n\r\n1;ext=1\r\nx\r\nA\r\n" + b"0123456789" + b"\r\n0\r\n\r\n"
    for cut in range(len(body) + 1):
        decoder = Unchunk()
        data = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        assert data == b"one\nx0123456789"
        assert decoder.done


class KeptOpen:
    """A socket's buffered file whose connection stays open: reading past the data blocks
    forever on a real socket, so here it fails the test instead."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read1(self, size: int) -> bytes:
        if not self.data:
            raise AssertionError("read past the end of the body: a real socket would hang")
        block, self.data = self.data[:size], self.data[size:]
        return block


def test_a_body_with_a_content_length_ends_there() -> None:
    from roscoe.engine.streams import pump

    got: list[bytes] = []
    pump(KeptOpen(b""), chunked=False, length=0, put=got.append)  # Podman's empty log
    assert got == []
    pump(KeptOpen(frame(1, b"hi\n")), chunked=False, length=len(frame(1, b"hi\n")), put=got.append)
    assert got == [frame(1, b"hi\n")]


def test_a_chunked_body_ends_at_its_last_chunk() -> None:
    from roscoe.engine.streams import pump

    got: list[bytes] = []
    pump(KeptOpen(b"3\r\nabc\r\n0\r\n\r\n"), chunked=True, length=None, put=got.append)
    assert b"".join(got) == b"abc"
