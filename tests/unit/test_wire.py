"""The engine client's own HTTP over a unix socket, against a server that answers canned bytes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.engine.connect import _negotiate, _older
from roscoe.engine.wire import Wire, WireError


class Canned:
    """A unix socket that answers each connection with the next canned answer, and keeps
    the requests it read."""

    def __init__(self, path: Path, answers: list[bytes]) -> None:
        self.path = path
        self.answers = answers
        self.requests: list[bytes] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for answer in self.answers:
            conn, _ = self._server.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        while len(body) < int(line.split(b":")[1]):
                            body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(answer)

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._server.close()


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[list[Canned]]:
    made: list[Canned] = []
    yield made
    for canned in made:
        canned.close()


def serve(made: list[Canned], tmp_path: Path, *answers: bytes) -> Wire:
    canned = Canned(tmp_path / "engine.sock", list(answers))
    made.append(canned)
    return Wire(str(canned.path), api_version="1.41", timeout=10)


def test_a_json_answer_by_its_length(engine_socket: list[Canned], tmp_path: Path) -> None:
    wire = serve(
        engine_socket,
        tmp_path,
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
        b'{"Id": "abc"}',
    )
    assert wire.call("POST", "/containers/create", params={"name": "r 1"}, body={"a": 1}) == {
        "Id": "abc"
    }
    request = engine_socket[0].requests[0]
    assert request.startswith(b"POST /v1.41/containers/create?name=r+1 HTTP/1.1\r\n")
    assert b"Content-Length: 8\r\n" in request and request.endswith(b'{"a": 1}')


def test_a_chunked_answer_and_one_that_ends_with_the_connection(
    engine_socket: list[Canned], tmp_path: Path
) -> None:
    wire = serve(
        engine_socket,
        tmp_path,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"Sta\r\n10;ext=1\r\ntusCode": 3}    \r\n0\r\n\r\n',
        b"HTTP/1.1 200 OK\r\n\r\n[1, 2]",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    )
    assert wire.call("POST", "/containers/x/wait") == {"StatusCode": 3}
    assert wire.call("GET", "/containers/json") == [1, 2]
    assert wire.call("POST", "/containers/x/start") is None


def test_an_error_status_carries_the_engines_message(
    engine_socket: list[Canned], tmp_path: Path
) -> None:
    body = b'{"message": "No such container: x"}'
    wire = serve(
        engine_socket,
        tmp_path,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    with pytest.raises(WireError) as caught:
        wire.call("GET", "/containers/x/json")
    assert (caught.value.status, caught.value.message) == (404, "No such container: x")


def test_ping_gives_the_headers_in_lower_case(engine_socket: list[Canned], tmp_path: Path) -> None:
    wire = serve(
        engine_socket,
        tmp_path,
        b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nServer: Docker/20.10\r\nContent-Length: 2"
        b"\r\n\r\nOK",
    )
    headers = wire.ping()
    assert headers["api-version"] == "1.41" and headers["server"] == "Docker/20.10"
    assert engine_socket[0].requests[0].startswith(b"GET /_ping HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "answer",
    [b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
)
def test_a_broken_answer_is_an_os_error(
    engine_socket: list[Canned], tmp_path: Path, answer: bytes
) -> None:
    wire = serve(engine_socket, tmp_path, answer)
    with pytest.raises(OSError):
        wire.call("GET", "/info")


def test_an_attach_hands_over_the_stream_after_the_head(
    engine_socket: list[Canned], tmp_path: Path
) -> None:
    wire = serve(
        engine_socket,
        tmp_path,
        b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nraw bytes",
    )
    raw = wire.hijack("/containers/x/attach", params={"stream": 1})
    got = b""
    while chunk := raw.read1(4):
        got += chunk
    raw.close()
    assert got == b"raw bytes"
    assert b"Upgrade: tcp\r\n" in engine_socket[0].requests[0]


def test_api_versions_are_compared_as_numbers() -> None:
    assert _negotiate("1.41") == "1.41"
    assert _negotiate("1.100") != "1.100"  # newer than roscoe knows: capped
    assert _negotiate("") == ""
    assert _older("4.3.1", "4.4") and not _older("20.10.24+dfsg1", "20.10")
    assert not _older("not a version", "1.0")


@pytest.mark.parametrize("network", ["none", "host"])
def test_a_run_without_a_network_asks_docker_for_no_network_sandbox(network: str) -> None:
    """NetworkDisabled: Docker then gives the container a namespace of its own without its
    network controller's sandbox (engine/runs.py); a run on the host's network never."""
    from roscoe.engine.engine import Engine

    sent: list[dict[str, Any]] = []

    class Recorder:
        def call(self, method: str, path: str, **kw: Any) -> Any:
            sent.append(kw["body"])
            return {"Id": "c1"}

    engine = Engine.__new__(Engine)
    engine._wire = Recorder()  # type: ignore[assignment]
    made = engine.run_create(
        name="n",
        image="i",
        entrypoint=["sh"],
        command=[],
        user="1000:1000",
        workdir="/data",
        env={},
        labels={},
        binds=[],
        network=network,
        memory_bytes=1 << 30,
        cpus=None,
        pids_limit=512,
        tmpfs={},
    )
    assert made == "c1"
    assert sent[0]["HostConfig"]["NetworkMode"] == network
    assert sent[0].get("NetworkDisabled", False) is (network == "none")
