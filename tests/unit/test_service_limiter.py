"""The run limiter: slots, a first-come-first-served line, 429 when the line is full."""

from __future__ import annotations

import threading

import pytest

from roscoe.service.limiter import QueueFull, RunLimiter, ShuttingDown


def _hold(limiter: RunLimiter, release: threading.Event, entered: list[int], n: int) -> None:
    try:
        with limiter.slot():
            entered.append(n)
            release.wait(10)
    except (QueueFull, ShuttingDown):
        entered.append(-n)


def _wait_for(predicate: object, deadline: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(deadline / 0.01)):
        if predicate():  # type: ignore[operator]
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


def test_queue_full_is_refused_at_once() -> None:
    limiter = RunLimiter(concurrency=1, queue=1)
    release = threading.Event()
    entered: list[int] = []
    first = threading.Thread(target=_hold, args=(limiter, release, entered, 1))
    second = threading.Thread(target=_hold, args=(limiter, release, entered, 2))
    first.start()
    _wait_for(lambda: limiter.running == 1)
    second.start()
    _wait_for(lambda: limiter.waiting == 1)
    with pytest.raises(QueueFull), limiter.slot():
        pass
    release.set()
    first.join(10)
    second.join(10)
    assert entered == [1, 2]
    assert (limiter.running, limiter.waiting) == (0, 0)


def test_waiters_are_served_in_arrival_order() -> None:
    limiter = RunLimiter(concurrency=1, queue=5)
    release = threading.Event()
    done = threading.Event()
    done.set()  # waiters leave their slot at once
    entered: list[int] = []
    holder = threading.Thread(target=_hold, args=(limiter, release, entered, 0))
    holder.start()
    _wait_for(lambda: limiter.running == 1)
    waiters = []
    for n in range(1, 5):
        waiter = threading.Thread(target=_hold, args=(limiter, done, entered, n))
        waiter.start()
        waiters.append(waiter)
        _wait_for(lambda n=n: limiter.waiting == n)
    release.set()
    for thread in [holder, *waiters]:
        thread.join(10)
    assert entered == [0, 1, 2, 3, 4]


def test_close_dismisses_waiters_and_refuses_newcomers() -> None:
    limiter = RunLimiter(concurrency=1, queue=2)
    release = threading.Event()
    entered: list[int] = []
    holder = threading.Thread(target=_hold, args=(limiter, release, entered, 1))
    waiter = threading.Thread(target=_hold, args=(limiter, release, entered, 2))
    holder.start()
    _wait_for(lambda: limiter.running == 1)
    waiter.start()
    _wait_for(lambda: limiter.waiting == 1)
    limiter.close()
    waiter.join(10)
    assert entered == [1, -2]
    with pytest.raises(ShuttingDown), limiter.slot():
        pass
    assert not limiter.wait_idle(0.05)
    release.set()
    holder.join(10)
    assert limiter.wait_idle(5)


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RunLimiter(concurrency=0, queue=1)
