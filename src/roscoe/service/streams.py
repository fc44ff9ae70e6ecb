"""The service's streams: a live run's output as it comes (`follow`), and its events as
Server-Sent Events (`events`), each client with its own watcher of the run."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from roscoe.service.api import ExecutionService
from roscoe.service.live import LiveRun, Watcher

# An events stream with nothing to say sends a comment this often, so idle proxies and
# clients keep it open (and a client gone is noticed).
SSE_KEEPALIVE_S = 15.0
FOLLOW_DROPPED_NOTE = (
    b"\n[roscoe: this client fell too far behind; the rest is in GET /runs/%s/output]\n"
)


async def follow(service: ExecutionService, live: LiveRun, tail: int) -> AsyncIterator[bytes]:
    snapshot, watcher = live.watch()
    service.stream_clients += 1
    try:
        if snapshot.tail:
            yield snapshot.tail[-tail:]
        if watcher is None:  # over between the lookup and now: the rest is on disk
            rest, _cut = await run_in_threadpool(service.saved_output, live.id, tail)
            if len(rest) > len(snapshot.tail[-tail:]):
                yield rest[len(snapshot.tail[-tail:]) :]
            return
        while True:
            event = await watcher.next()
            if event.kind == "output":
                yield event.data
            elif event.kind == "dropped":
                yield FOLLOW_DROPPED_NOTE % live.id.encode()
                return
            elif live.finished:
                return
    finally:
        live.unwatch(watcher)
        service.stream_clients -= 1


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class Utf8Chunks:
    """Output chunks as SSE payloads: text when UTF-8 (a character split between chunks is
    held back for the next one), base64 otherwise."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> dict[str, str] | None:
        data, self._carry = self._carry + data, b""
        try:
            return {"encoding": "utf-8", "data": data.decode("utf-8")}
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
                self._carry = data[exc.start :]
                if not exc.start:
                    return None
                return {"encoding": "utf-8", "data": data[: exc.start].decode("utf-8")}
        return {"encoding": "base64", "data": base64.b64encode(data).decode("ascii")}

    def flush(self) -> dict[str, str] | None:
        data, self._carry = self._carry, b""
        return {"encoding": "base64", "data": base64.b64encode(data).decode()} if data else None


async def events(  # noqa: PLR0912 - one branch per kind of event
    service: ExecutionService, run_id: str, live: LiveRun | None, record: dict[str, Any] | None
) -> AsyncIterator[bytes]:
    if live is None:  # over already: its saved output's end, then the record
        output, _cut = await run_in_threadpool(service.saved_output, run_id, 1024 * 1024)
        chunk = Utf8Chunks().feed(output) if output else None
        if chunk:
            yield sse("output", chunk)
        yield sse("status", record)
        return
    snapshot, watcher = live.watch()
    service.stream_clients += 1
    text = Utf8Chunks()
    try:
        yield sse("status", service.current_record(live))
        if snapshot.tail:
            chunk = text.feed(snapshot.tail)
            if chunk:
                yield sse("output", chunk)
        if watcher is None:
            yield sse("status", live.record)
            return
        async for event in _with_keepalive(watcher):
            if event is None:
                yield b": keep-alive\n\n"
            elif event.kind == "output":
                chunk = text.feed(event.data)
                if chunk:
                    yield sse("output", chunk)
            elif event.kind == "dropped":
                yield sse("dropped", {"reason": "this client fell too far behind"})
                return
            else:
                if live.finished:
                    rest = text.flush()
                    if rest:
                        yield sse("output", rest)
                yield sse("status", event.data or service.current_record(live))
                if live.finished:
                    return
    finally:
        live.unwatch(watcher)
        service.stream_clients -= 1


async def _with_keepalive(watcher: Watcher) -> AsyncIterator[Any]:
    while True:
        try:
            yield await asyncio.wait_for(watcher.next(), SSE_KEEPALIVE_S)
        except asyncio.TimeoutError:
            yield None
