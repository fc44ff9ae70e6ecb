"""Byte streams from the engine, decoded: a run's attach stream and a container's logs.

No engine calls here: these classes only turn bytes into (stream, bytes) pieces, so they are
tested on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from roscoe.engine.wire import Raw

log = logging.getLogger("roscoe.engine")

_STREAMS = {1: "stdout", 2: "stderr"}
_CHUNK = 64 * 1024
_BLOCK = 256 * 1024


class OutputStream:
    """A container's attach stream as (stream name, bytes) chunks, in arrival order.

    The engine multiplexes stdout and stderr into frames (an 8-byte header: stream number
    and length). Chunks are handed on as soon as they arrive, not when a frame is complete,
    so large frames never sit in memory.
    """

    def __init__(self, raw: Raw):
        # A taken-over connection with no read timeout: a silent script must not end it.
        self._raw = raw

    def _exactly(self, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            more = self._raw.read1(count - len(data))
            if not more:
                return None
            data += more
        return data

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            header = self._exactly(8)
            if header is None:
                return
            name = _STREAMS.get(header[0], "stdout")
            left = int.from_bytes(header[4:8], "big")
            while left > 0:
                data = self._raw.read1(min(left, _CHUNK))
                if not data:
                    return
                left -= len(data)
                yield name, data

    def close(self) -> None:
        self._raw.close()


class Unchunk:
    """Decodes HTTP/1.1 chunked transfer encoding from blocks cut anywhere."""

    def __init__(self) -> None:
        self._pending = b""
        self._left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self.done = False

    def feed(self, block: bytes) -> bytes:
        buf = self._pending + block if self._pending else block
        self._pending = b""
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while pos < size and not self.done:
            if self._left > 0:
                take = min(self._left, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self._left = -2  # the CRLF after the data
                continue
            if self._left < 0:
                skip = min(-self._left, size - pos)
                pos += skip
                self._left += skip
                continue
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                self._pending = buf[pos:]
                break
            length = int(buf[pos:line_end].split(b";", 1)[0], 16)
            pos = line_end + 2
            if length == 0:
                self.done = True  # trailers, if any, are not needed
                break
            self._left = length
        return b"".join(out)


def pump(body: Any, chunked: bool, length: int | None, put: Callable[[bytes], None]) -> None:
    """Hand on an HTTP response body as it arrives, read from the socket's buffer in blocks.

    Engines send each log line as its own HTTP chunk: http.client would hand them over one by
    one (a million calls for a million lines), so the body is read in large blocks and
    de-chunked here. A body that is not chunked ends after its Content-Length (Podman answers
    an empty log with `Content-Length: 0` and keeps the connection open: reading on would
    wait forever), or else when the engine closes the connection.
    """
    unchunk = Unchunk() if chunked else None
    left = None if chunked else length
    while left is None or left > 0:
        block = body.read1(_BLOCK if left is None else min(_BLOCK, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        data = unchunk.feed(block) if unchunk is not None else block
        if data:
            put(data)
        if unchunk is not None and unchunk.done:
            return


class LogFrames:
    """Decodes the engine's multiplexed log stream: 8-byte headers (stream, size) + payload."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Whole frames found so far, consecutive frames of one stream joined."""
        buf = self._pending + data if self._pending else data
        out: list[tuple[int, bytes]] = []
        parts: list[bytes] = []
        current = 0
        pos, size = 0, len(buf)
        while pos + 8 <= size:
            stream = buf[pos]
            end = pos + 8 + int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if end > size:
                break
            if stream != current and parts:
                out.append((current, b"".join(parts)))
                parts = []
            current = stream
            parts.append(buf[pos + 8 : end])
            pos = end
        if parts:
            out.append((current, b"".join(parts)))
        self._pending = buf[pos:]
        return out


def shutdown(response: Any) -> None:
    """End a streaming response now, waking a reader blocked on its socket."""
    import contextlib
    import socket

    raw = getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):  # closing a dead stream: nothing left to do
        response.close()
