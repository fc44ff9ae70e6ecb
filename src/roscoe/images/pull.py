"""Pulling an image with real progress: per-layer bytes folded into one picture of the pull.

The engine's pull stream is read in a thread; the caller's `progress` callback gets a
`PullSnapshot` on every event AND on a timer, because engines go silent: Podman sends nothing
while it commits layers, Docker nothing while it resolves. The snapshot's phase says what is
happening then. Errors arrive inside the stream ({"error": ...}) and are errors here; a stream
that ends without the image being there is one too. Never prints: rendering is the CLI's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe.engine.errors import pull_failure
from roscoe.errors import ExitCode, ImageError, RoscoeError

if TYPE_CHECKING:
    from roscoe.engine.protocols import ImageEngine

# Phases, in the user's words.
RESOLVING = "resolving"
DOWNLOADING = "downloading"
EXTRACTING = "extracting"
COMMITTING = "waiting for the engine"  # all bytes in, the engine silent (Podman commits layers)
DONE = "done"

QUIET_AFTER = 1.0  # seconds without an event after the downloads before saying "waiting"
SPEED_WINDOW = 3.0  # seconds of samples the speed is averaged over


@dataclass
class Layer:
    total: int | None = None
    downloaded: int = 0
    fetched: bool = False  # download complete (or already there)
    complete: bool = False  # extracted (Docker) or already there
    existed: bool = False

    def apply(self, status: str, detail: Mapping[str, Any]) -> bool:
        """Take one event for this layer; True when it shows the engine extracts (Docker)."""
        if status == "Already exists":
            self.fetched = self.complete = self.existed = True
        elif status == "Downloading":
            if detail.get("total"):
                self.total = int(detail["total"])
            if detail.get("current") is not None:
                self.downloaded = int(detail["current"])
        elif status in ("Verifying Checksum", "Download complete", "Extracting", "Pull complete"):
            self.fetched = True
            self.complete = self.complete or status == "Pull complete"
            if self.total:
                self.downloaded = self.total
            return status in ("Extracting", "Pull complete")
        return False


@dataclass(frozen=True)
class PullSnapshot:
    """One picture of a pull, for a progress bar or a plain line."""

    ref: str
    phase: str
    downloaded: int  # bytes
    total: int  # bytes of the layers whose size is known so far
    totals_known: bool  # every layer being downloaded has told its size
    layers_fetched: int
    layers_complete: int
    layers_total: int
    extracting: bool  # the engine reports extraction (Docker); then complete means extracted
    elapsed: float
    speed: float  # bytes per second over the last few seconds
    silent_for: float  # seconds since the engine last said anything

    @property
    def eta(self) -> float | None:
        if not self.totals_known or self.speed <= 0 or self.total <= 0:
            return None
        return max(0.0, (self.total - self.downloaded) / self.speed)

    @property
    def layers_done(self) -> int:
        return self.layers_complete if self.extracting else self.layers_fetched


# Pull progress, called while the image is being pulled.
OnPull = Callable[[PullSnapshot], None]


def stream_error(event: Mapping[str, Any]) -> str | None:
    """The error an event carries ({"error": ..., "errorDetail": {"message": ...}}), if any."""
    detail = event.get("errorDetail")
    message = event.get("error") or (detail.get("message") if isinstance(detail, dict) else None)
    if not message:
        return None
    return str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"


class PullProgress:
    """Folds the engine's per-layer events into totals. Feed events; ask for snapshots."""

    def __init__(self, ref: str, clock: Callable[[], float] = time.monotonic):
        self.ref = ref
        self._clock = clock
        self.started = clock()
        self.last_event = self.started
        self.layers: dict[str, Layer] = {}
        self.digest: str | None = None
        self.error: str | None = None
        self.finished = False
        self.events = 0
        self._extracting = False
        self._samples: deque[tuple[float, int]] = deque()

    def feed(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        self.last_event = self._clock()
        error = stream_error(event)
        if error:
            self.error = error
            return
        status = str(event.get("status") or "")
        layer_id = str(event.get("id") or "")
        detail = event.get("progressDetail") or {}
        if status.startswith("Digest:"):
            self.digest = status.split(":", 1)[1].strip()
            return
        if status.startswith(("Pulling from", "Status:")) or not layer_id:
            return
        layer = self.layers.setdefault(layer_id, Layer())
        if layer.apply(status, detail):
            self._extracting = True
        self._sample()

    def end(self) -> None:
        """The stream is over."""
        self.finished = True

    @property
    def downloaded(self) -> int:
        return sum(layer.downloaded for layer in self.layers.values() if not layer.existed)

    def snapshot(self) -> PullSnapshot:
        now = self._clock()
        layers = [layer for layer in self.layers.values()]
        fetching = [layer for layer in layers if not layer.existed]
        total = sum(layer.total or 0 for layer in fetching)
        fetched = sum(layer.fetched for layer in layers)
        complete = sum(layer.complete for layer in layers)
        silent = now - self.last_event
        if self.finished:
            phase = DONE
        elif not layers:
            phase = RESOLVING
        elif fetched < len(layers):
            phase = DOWNLOADING
        elif self._extracting and complete < len(layers):
            phase = EXTRACTING
        elif silent >= QUIET_AFTER:
            phase = COMMITTING
        else:
            phase = EXTRACTING if self._extracting else DOWNLOADING
        return PullSnapshot(
            ref=self.ref,
            phase=phase,
            downloaded=self.downloaded,
            total=total,
            totals_known=all(layer.total or layer.fetched for layer in fetching),
            layers_fetched=fetched,
            layers_complete=complete,
            layers_total=len(layers),
            extracting=self._extracting,
            elapsed=now - self.started,
            speed=self._speed(now),
            silent_for=silent,
        )

    def _sample(self) -> None:
        now = self._clock()
        self._samples.append((now, self.downloaded))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.popleft()

    def _speed(self, now: float) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        # A silent engine is not downloading: the window stretches to now.
        span = max(now, t1) - t0
        return (b1 - b0) / span if span > 0 else 0.0


@dataclass
class PullResult:
    ref: str
    digest: str | None
    downloaded: int  # bytes
    layers: int
    elapsed: float
    events: int
    inspect: dict[str, Any] = field(default_factory=dict, repr=False)  # the image, as it landed


_END = object()


def pull_image(
    engine: ImageEngine,
    ref: str,
    progress: Callable[[PullSnapshot], None] | None = None,
    tick: float = 0.5,
) -> PullResult:
    """Pull `ref` through the engine, reporting progress; confirm the image is there after.

    Raises ImageError (exit 4) for an error in the stream, a registry the engine cannot reach,
    or a pull that "succeeds" without the image; RoscoeError with exit 130 on Ctrl-C.
    """
    from roscoe.images.reference import parse_reference

    wanted = parse_reference(ref)
    tracker = PullProgress(ref)
    items: queue.Queue[Any] = queue.Queue()

    def read(events: Iterator[dict[str, Any]]) -> None:
        try:
            for event in events:
                items.put(event)
        except BaseException as exc:  # handed to the caller's thread, which decides
            items.put(exc)
        items.put(_END)

    def report() -> None:
        if progress is not None:
            progress(tracker.snapshot())

    try:
        report()
        events = engine.pull_stream(wanted.repository, wanted.pull_tag)
        # A daemon thread: on Ctrl-C the process leaves without waiting for the engine.
        threading.Thread(target=read, args=(events,), name="roscoe-pull", daemon=True).start()
        while True:
            try:
                item = items.get(timeout=tick)
            except queue.Empty:
                report()  # the engine is silent: the phase may change with time alone
                continue
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            tracker.feed(item)
            if tracker.error:
                raise pull_failure(ref, tracker.error)
            report()
    except KeyboardInterrupt:
        raise RoscoeError(f"pull of {ref} interrupted", exit_code=ExitCode.INTERRUPTED) from None
    # A stream can end "successfully" without the image (SAM never checked): confirm it.
    landed = engine.image_inspect(ref)
    if landed is None:
        raise ImageError(
            f"the engine ended the pull of {ref}, but the image is not there",
            hint="try `roscoe image pull` again; `roscoe --debug image pull` shows every event",
        )
    tracker.end()
    report()
    return PullResult(
        ref=ref,
        digest=tracker.digest,
        downloaded=tracker.downloaded,
        layers=len(tracker.layers),
        elapsed=tracker.snapshot().elapsed,
        events=tracker.events,
        inspect=landed,
    )
