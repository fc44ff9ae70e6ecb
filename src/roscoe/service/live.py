"""One run as the service holds it while it is queued or running: its state, the end of its
output, and whoever watches it.

The run core calls `publish_output` from its follower thread; watchers live on the event
loop and are fed with `loop.call_soon_threadsafe`, so no thread is spent per watcher and a
watcher that goes away only has to unsubscribe. A watcher that falls too far behind is
dropped (it is told so) rather than letting its backlog grow without bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roscoe.service.validate import RunRequest

# The end of a live run's output kept in memory: what a watcher joining late gets first.
LIVE_TAIL_BYTES = 1024 * 1024
# A watcher more than this many bytes behind is dropped instead of buffering on.
MAX_WATCHER_BACKLOG = 8 * 1024 * 1024

QUEUED = "queued"
RUNNING = "running"


@dataclass(frozen=True)
class Event:
    """What a watcher receives: ("output", bytes), ("status", record) or ("dropped", None)."""

    kind: str
    data: Any


class Watcher:
    """One subscriber: an asyncio queue fed from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, want_output: bool):
        self.loop = loop
        self.want_output = want_output
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.backlog = 0  # bytes handed over and not yet taken
        self.dropped = False

    def offer(self, event: Event) -> None:
        """Called with the run's lock held, from any thread."""
        if self.dropped:
            return
        if event.kind == "output":
            if not self.want_output:
                return
            self.backlog += len(event.data)
            if self.backlog > MAX_WATCHER_BACKLOG:
                self.dropped = True
                event = Event("dropped", None)
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.dropped = True

    async def next(self) -> Event:
        event = await self.queue.get()
        if event.kind == "output":
            self.backlog -= len(event.data)
        return event


@dataclass(frozen=True)
class Snapshot:
    """A run's state at the moment a watcher joined, taken with the run's lock held."""

    status: str
    record: dict[str, Any] | None  # the final record once the run is over
    tail: bytes  # the end of the output so far (at most LIVE_TAIL_BYTES)
    tail_cut: bool  # True when earlier output is not in `tail`


@dataclass
class LiveRun:
    id: str
    request: RunRequest
    accepted_at: float = field(default_factory=time.time)
    status: str = QUEUED
    record: dict[str, Any] | None = None  # the final record
    # Why it ended without a record (the run failed before its container existed):
    # (HTTP status, reason). Only answers to a waiting POST use it.
    failure: tuple[int, str] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None  # "cancelled" (DELETE, a client gone) or "interrupted"
    cancel_message: str | None = None  # the record's message when cancelled
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tail: bytearray = field(default_factory=bytearray)
    _total: int = 0
    _watchers: set[Watcher] = field(default_factory=set)

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    # -- from the run's thread -----------------------------------------------------------
    def publish_output(self, _stream: str, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._total += len(data)
            self._tail += data
            if len(self._tail) > LIVE_TAIL_BYTES:
                del self._tail[: len(self._tail) - LIVE_TAIL_BYTES]
            for watcher in self._watchers:
                watcher.offer(Event("output", bytes(data)))

    def set_running(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.status = RUNNING
            for watcher in self._watchers:
                watcher.offer(Event("status", record))

    def finish(self, record: dict[str, Any] | None, failure: tuple[int, str] | None) -> None:
        with self._lock:
            self.record = record
            self.failure = failure
            self.status = str(record["status"]) if record else "error"
            self.done.set()
            for watcher in self._watchers:
                watcher.offer(Event("status", record))
            self._watchers.clear()

    # -- from the event loop -------------------------------------------------------------
    def watch(self, want_output: bool = True) -> tuple[Snapshot, Watcher | None]:
        """The state now and, unless the run is over, a watcher for what follows."""
        loop = asyncio.get_running_loop()
        with self._lock:
            snapshot = Snapshot(
                status=self.status,
                record=self.record,
                tail=bytes(self._tail),
                tail_cut=self._total > len(self._tail),
            )
            if self.done.is_set():
                return snapshot, None
            watcher = Watcher(loop, want_output)
            self._watchers.add(watcher)
            return snapshot, watcher

    def unwatch(self, watcher: Watcher | None) -> None:
        if watcher is None:
            return
        with self._lock:
            self._watchers.discard(watcher)

    async def wait(self) -> None:
        """Until the run is over (without taking a thread)."""
        _snapshot, watcher = self.watch(want_output=False)
        try:
            while watcher is not None and not self.done.is_set():
                await watcher.next()
        finally:
            self.unwatch(watcher)


OnFinished = Callable[[LiveRun], None]
