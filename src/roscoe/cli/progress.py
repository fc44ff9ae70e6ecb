"""How a pull looks: one rich bar on a terminal, a few plain lines when output is piped.

Any command that may pull (image pull, server start, run) passes `PullView(...)` as the
`progress` callback of roscoe.images.ensure.ensure_image / roscoe.images.pull.pull_image,
inside `with`; `server start` shows its steps and its pull on one line (`start_progress`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from roscoe.cli import render

if TYPE_CHECKING:
    from rich.console import Console

    from roscoe.images.pull import PullSnapshot

PLAIN_INTERVAL = 2.0  # seconds between plain progress lines
SILENCE_NOTICE = 3.0  # seconds of engine silence before the line says so


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def human_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def describe(snap: PullSnapshot) -> str:
    """One plain line: phase, bytes, speed, ETA, layers."""
    parts = [snap.phase]
    if snap.total:
        share = f" ({100 * snap.downloaded / snap.total:.0f}%)" if snap.totals_known else ""
        parts.append(f"{human_bytes(snap.downloaded)}/{human_bytes(snap.total)}{share}")
    elif snap.downloaded:
        parts.append(human_bytes(snap.downloaded))
    if snap.speed > 0 and snap.phase != "done":
        parts.append(f"{human_bytes(snap.speed)}/s")
    if snap.eta is not None and snap.phase == "downloading":
        parts.append(f"ETA {human_seconds(snap.eta)}")
    if snap.layers_total:
        parts.append(f"layers {snap.layers_done}/{snap.layers_total}")
    if snap.phase != "done" and snap.silent_for >= SILENCE_NOTICE:
        # Podman goes quiet mid-layer and while committing: say so rather than look frozen.
        parts.append(f"no word from the engine for {human_seconds(snap.silent_for)}")
    return ", ".join(parts)


class PullView:
    """The progress callback for a pull; use it as a context manager around the pull."""

    def __init__(self, ref: str, quiet: bool = False, console: Console | None = None):
        self.ref = ref
        self.quiet = quiet
        self.console = console or render.console(stderr=True)
        self.live = self.console.is_terminal and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._last_line = 0.0
        self._last: PullSnapshot | None = None
        self._started = False

    def __enter__(self) -> PullView:
        return self

    def _start(self) -> None:
        """On the first snapshot only: a present image is never pulled, and shows nothing."""
        self._started = True
        if self.live:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[phase]}[/]"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "pull", total=None, phase="resolving", detail=render.escape(self.ref)
            )
        else:
            self.console.print(f"pulling {render.escape(self.ref)}", soft_wrap=True)
            self._last_line = time.monotonic()

    def __call__(self, snap: PullSnapshot) -> None:
        self._last = snap
        if self.quiet:
            return
        if not self._started:
            self._start()
        if self._progress is not None:
            bar_total = snap.total if snap.total else None
            detail = describe(snap).split(", ", 1)[1] if ", " in describe(snap) else ""
            self._progress.update(
                self._task,
                total=bar_total,
                completed=snap.downloaded if bar_total else 0,
                phase=snap.phase,
                detail=render.escape(detail),
            )
            return
        now = time.monotonic()
        if snap.phase != "done" and now - self._last_line >= PLAIN_INTERVAL:
            self.console.print(f"  {render.escape(describe(snap))}", soft_wrap=True)
            self._last_line = now

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.quiet or not self._started:
            return
        if self._progress is not None:
            self._progress.stop()
        snap = self._last
        if kind is None and snap is not None:
            # Podman reports no bytes for layers that download within a second.
            size = f"{human_bytes(snap.downloaded)} " if snap.downloaded else ""
            self.console.print(
                f"pulled {render.escape(self.ref)}: {size}in {human_seconds(snap.elapsed)}",
                soft_wrap=True,
            )


class StartProgress:
    """What `server start` shows: a spinner on stderr when it is a terminal, plain lines
    otherwise; a pull's progress (bytes, speed, layers) goes into the same line."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.err = render.console(stderr=True)
        self.spinner: Any = None
        self._last_line = 0.0

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        if self.spinner is not None:
            self.spinner.update(render.escape(message))
        else:
            self.err.print(render.escape(message), soft_wrap=True)

    def pull(self, snap: PullSnapshot) -> None:
        if self.quiet:
            return
        line = f"pulling {snap.ref}: {describe(snap)}"
        if self.spinner is not None:
            self.spinner.update(render.escape(line))
        elif time.monotonic() - self._last_line >= PLAIN_INTERVAL or snap.phase == "done":
            self._last_line = time.monotonic()
            self.err.print(render.escape(line), soft_wrap=True)


@contextlib.contextmanager
def start_progress(quiet: bool) -> Iterator[StartProgress]:
    shown = StartProgress(quiet)
    if quiet or not shown.err.is_terminal:
        yield shown
        return
    with shown.err.status("starting the runner") as spinner:
        shown.spinner = spinner
        yield shown
