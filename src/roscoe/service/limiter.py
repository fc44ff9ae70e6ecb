"""How many runs go at once, how many may wait, and who is next: first come, first served.

A request beyond `concurrency` waits in line; beyond `queue` waiting it is refused at once
(the HTTP layer answers 429). On shutdown the line is dismissed and new arrivals refused.
The counters are read without taking the lock, so /health never waits behind a run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class QueueFull(Exception):
    """Every run slot is busy and the waiting line is full."""


class ShuttingDown(Exception):
    """The service is stopping and takes no more runs."""


class RunLimiter:
    def __init__(self, concurrency: int, queue: int):
        if concurrency < 1 or queue < 0:
            raise ValueError("concurrency must be at least 1 and queue at least 0")
        self.concurrency = concurrency
        self.queue = queue
        self._cond = threading.Condition()
        self._line: deque[int] = deque()  # tickets of waiting requests, in arrival order
        self._tickets = itertools.count()
        self._running = 0
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one run slot for the duration; QueueFull or ShuttingDown when none is given."""
        self._acquire()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _acquire(self) -> None:
        with self._cond:
            if self._closed:
                raise ShuttingDown
            # Nobody jumps the line: a free slot goes to the longest waiter first.
            if self._running < self.concurrency and not self._line:
                self._running += 1
                return
            if len(self._line) >= self.queue:
                raise QueueFull
            ticket = next(self._tickets)
            self._line.append(ticket)
            try:
                while not self._closed and not (
                    self._line[0] == ticket and self._running < self.concurrency
                ):
                    self._cond.wait()
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()  # the next in line may now be at the front
            if self._closed:
                raise ShuttingDown
            self._running += 1

    def close(self) -> None:
        """Refuse new runs and dismiss everyone waiting (they get ShuttingDown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run holds a slot, at most `timeout` seconds; True when idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
