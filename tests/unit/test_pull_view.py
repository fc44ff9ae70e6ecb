"""How a pull is shown: plain lines off a terminal (rate-limited, no escape codes)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from roscoe.cli.progress import PullView, describe
from roscoe.images.pull import COMMITTING, DONE, DOWNLOADING, PullSnapshot


def snap(phase: str = DOWNLOADING, downloaded: int = 5_000_000, **kw: Any) -> PullSnapshot:
    values: dict[str, Any] = {
        "ref": "127.0.0.1:5000/img:v1",
        "phase": phase,
        "downloaded": downloaded,
        "total": 10_000_000,
        "totals_known": True,
        "layers_fetched": 1,
        "layers_complete": 0,
        "layers_total": 3,
        "extracting": False,
        "elapsed": 2.0,
        "speed": 2_500_000.0,
        "silent_for": 0.1,
    }
    values.update(kw)
    return PullSnapshot(**values)


def test_describe_names_phase_bytes_speed_eta_and_layers() -> None:
    line = describe(snap())
    assert line == "downloading, 5.0 MB/10.0 MB (50%), 2.5 MB/s, ETA 2s, layers 1/3"


def test_describe_says_when_the_engine_is_silent() -> None:
    line = describe(snap(COMMITTING, downloaded=10_000_000, speed=0.0, silent_for=4.0))
    assert line.startswith("waiting for the engine, 10.0 MB/10.0 MB (100%)")
    assert "no word from the engine for 4s" in line


def test_plain_output_is_rate_limited_and_has_start_and_end_lines() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with PullView("127.0.0.1:5000/img:v1", console=console) as view:
        for _ in range(50):  # a burst of events within far less than 2 s
            view(snap())
        view(snap(DONE, downloaded=10_000_000))
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "pulling 127.0.0.1:5000/img:v1"
    assert lines[-1].startswith("pulled 127.0.0.1:5000/img:v1: 10.0 MB in")
    assert len(lines) <= 3
    assert "\x1b" not in buffer.getvalue()


def test_nothing_is_shown_when_no_pull_happens_or_when_quiet() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False)
    with PullView("img:v1", console=console):
        pass
    with PullView("img:v1", quiet=True, console=console) as view:
        view(snap())
    assert buffer.getvalue() == ""
