"""Pull progress folded from recorded engine streams, error events, and pull_image's contract.

The fixtures are real pull streams (tests/unit/fixtures/pull-*.json), each event with "_t", the
seconds since the request, so silences replay on a fake clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roscoe.engine.errors import pull_failure
from roscoe.engine.fake import FakeEngine, Published
from roscoe.errors import EngineError, ImageError, RoscoeError
from roscoe.images.pull import (
    COMMITTING,
    DONE,
    DOWNLOADING,
    EXTRACTING,
    RESOLVING,
    PullProgress,
    PullSnapshot,
    pull_image,
    stream_error,
)

FIXTURES = Path(__file__).parent / "fixtures"


def events(name: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / name).read_text()))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(name: str) -> tuple[PullProgress, Clock, list[PullSnapshot]]:
    """Feed a recorded stream at its recorded times; a snapshot after every event."""
    clock = Clock()
    tracker = PullProgress("ref", clock=clock)
    snaps = []
    for event in events(name):
        clock.now = event["_t"]
        tracker.feed(event)
        snaps.append(tracker.snapshot())
    return tracker, clock, snaps


def test_docker_stream_adds_layer_bytes_into_one_total() -> None:
    tracker, _, snaps = replay("pull-docker.json")
    final = snaps[-1]
    # One layer already existed; three were downloaded (20 MB, 5 MB and 110 bytes).
    assert final.layers_total == 4
    assert final.layers_complete == 4
    assert final.downloaded == final.total == 20006297 + 5001733 + 110
    assert final.totals_known
    assert tracker.digest is not None and tracker.digest.startswith("sha256:6953ed05")
    assert tracker.error is None


def test_docker_phases_go_resolving_downloading_extracting_done() -> None:
    clock = Clock()
    tracker = PullProgress("ref", clock=clock)
    assert tracker.snapshot().phase == RESOLVING
    seen = []
    for event in events("pull-docker.json"):
        clock.now = event["_t"]
        tracker.feed(event)
        phase = tracker.snapshot().phase
        if not seen or seen[-1] != phase:
            seen.append(phase)
    tracker.end()
    seen.append(tracker.snapshot().phase)
    assert seen[0] in (RESOLVING, DOWNLOADING)
    assert DOWNLOADING in seen and EXTRACTING in seen
    assert seen.index(DOWNLOADING) < seen.index(EXTRACTING)
    assert seen[-1] == DONE


def test_docker_layers_count_as_done_only_when_extracted() -> None:
    _, _, snaps = replay("pull-docker.json")
    extracting = [s for s in snaps if s.phase == EXTRACTING]
    assert extracting, "the docker stream extracts"
    assert all(s.extracting for s in extracting)
    assert min(s.layers_done for s in extracting) < 4


def test_podman_silence_after_downloads_reads_as_waiting_for_the_engine() -> None:
    clock = Clock()
    tracker = PullProgress("ref", clock=clock)
    recorded = events("pull-podman.json")
    last_download = max(
        i for i, e in enumerate(recorded) if e["status"] == "Download complete" and i < 9
    )
    for event in recorded[: last_download + 1]:
        clock.now = event["_t"]
        tracker.feed(event)
    assert tracker.snapshot().phase == DOWNLOADING  # just finished: not yet "silent"
    clock.now += 2.5  # Podman says nothing while it commits layers
    snap = tracker.snapshot()
    assert snap.phase == COMMITTING
    assert snap.silent_for == pytest.approx(2.5)
    assert snap.layers_fetched == snap.layers_total == 4


def test_podman_counts_layers_done_when_downloaded_and_bytes_it_was_told() -> None:
    tracker, _, snaps = replay("pull-podman.json")
    final = snaps[-1]
    assert not final.extracting  # Podman never reports extraction
    # The image's config blob shows up as one more "layer" at the end.
    assert final.layers_done == final.layers_total == 5
    # Only the big layer sent byte counts; the small ones only "Download complete".
    assert final.downloaded == final.total == 67059075
    tracker.end()
    assert tracker.snapshot().phase == DONE


def test_podman_silence_mid_download_is_measured_and_speed_decays() -> None:
    clock = Clock()
    tracker = PullProgress("ref", clock=clock)
    recorded = events("pull-podman-runner.json")
    downloading = [i for i, e in enumerate(recorded) if e["status"] == "Downloading"]
    for event in recorded[: downloading[1] + 1]:
        clock.now = event["_t"]
        tracker.feed(event)
    busy = tracker.snapshot()
    assert busy.phase == DOWNLOADING and busy.speed > 0
    assert busy.eta is not None
    clock.now += 5
    quiet = tracker.snapshot()
    assert quiet.phase == DOWNLOADING  # a layer is still incomplete
    assert quiet.silent_for == pytest.approx(5)
    assert quiet.speed < busy.speed


def test_error_events_are_detected_and_end_nothing_else() -> None:
    (podman_error,) = events("pull-podman-missing-tag.json")
    message = stream_error(podman_error)
    assert message is not None and "manifest unknown" in message
    docker_style = {"errorDetail": {"message": "unauthorized: authentication required"}}
    assert stream_error(docker_style) == "unauthorized: authentication required"
    assert stream_error({"error": "line one\nline two"}) == "line one"
    for event in events("pull-docker.json") + events("pull-podman.json"):
        assert stream_error(event) is None
    tracker = PullProgress("ref")
    tracker.feed(podman_error)
    assert tracker.error == message


@pytest.mark.parametrize(
    ("reason", "hint_word"),
    [
        ("unauthorized: authentication required", "login"),
        ("denied: requested access to the resource is denied", "login"),
        (
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
            "reach",
        ),
        ("manifest unknown: manifest unknown", "no such tag"),
        ("something else entirely", "--debug"),
    ],
)
def test_pull_failure_is_one_line_exit_4_with_a_fitting_hint(reason: str, hint_word: str) -> None:
    error = pull_failure("r:v1", reason + "\nsecond line")
    assert error.exit_code == 4
    assert "\n" not in error.message
    assert error.message == f"could not pull r:v1: {reason}"
    assert error.hint is not None and hint_word in error.hint


LANDED = {"Id": "sha256:abc", "RepoDigests": []}


def publishing(
    ref: str, stream: list[dict[str, Any]], lands: bool = True, delay: float = 0.0
) -> FakeEngine:
    """The fake engine whose registry has `ref`, pulled with these events."""
    engine = FakeEngine(kind="fake")
    engine.registry[ref] = Published(events=stream, image=LANDED if lands else None, delay=delay)
    return engine


def test_pull_image_splits_host_port_references_and_reports_done() -> None:
    engine = publishing("127.0.0.1:5000/team/img:v2", events("pull-docker.json"))
    snaps: list[PullSnapshot] = []
    result = pull_image(engine, "127.0.0.1:5000/team/img:v2", snaps.append)
    assert engine.pull_requests == [("127.0.0.1:5000/team/img", "v2")]
    assert snaps[0].phase == RESOLVING
    assert snaps[-1].phase == DONE
    assert result.layers == 4
    assert result.downloaded == 20006297 + 5001733 + 110
    assert result.digest is not None
    assert result.inspect["Id"] == "sha256:abc"


def test_pull_image_by_digest_passes_the_digest_as_tag() -> None:
    ref = "reg.example:5000/img@sha256:" + "a" * 64
    engine = publishing(ref, events("pull-docker.json"))
    pull_image(engine, ref)
    assert engine.pull_requests == [("reg.example:5000/img", "sha256:" + "a" * 64)]


def test_error_inside_the_stream_is_exit_4() -> None:
    ref = "127.0.0.1:5000/roscoe-test/rec:nope"
    engine = publishing(ref, events("pull-podman-missing-tag.json"), lands=False)
    with pytest.raises(ImageError) as caught:
        pull_image(engine, ref)
    assert caught.value.exit_code == 4
    assert "manifest unknown" in caught.value.message


def test_a_stream_that_succeeds_without_the_image_is_an_error() -> None:
    engine = publishing("img:v1", events("pull-docker.json"), lands=False)
    with pytest.raises(ImageError, match="not there"):
        pull_image(engine, "img:v1")


def test_a_reference_the_registry_does_not_have_is_exit_4() -> None:
    with pytest.raises(ImageError, match="manifest unknown") as caught:
        pull_image(FakeEngine(), "img:nope")
    assert caught.value.exit_code == 4


def test_engine_failure_while_reading_reaches_the_caller() -> None:
    engine = FakeEngine()
    engine.registry["img:v1"] = Published(
        events=[{"status": "Pulling fs layer", "id": "aaa", "progressDetail": {}}],
        fails_with=EngineError("fake stopped answering"),
    )
    with pytest.raises(EngineError, match="stopped answering"):
        pull_image(engine, "img:v1")


def test_a_silent_engine_still_gets_progress_from_the_timer() -> None:
    stream = [
        {"status": "Pulling fs layer", "id": "aaa", "progressDetail": {}},
        {"status": "Download complete", "id": "aaa", "progressDetail": {}},
    ]
    engine = publishing("img:v1", stream, delay=0.3)
    snaps: list[PullSnapshot] = []
    pull_image(engine, "img:v1", snaps.append, tick=0.02)
    # Two events (plus the first and the last report), yet many more snapshots: the timer's.
    assert len(snaps) > 4
    assert snaps[-1].phase == DONE


def test_ctrl_c_during_a_pull_is_exit_130_one_line() -> None:
    engine = publishing("img:v1", [])
    engine.fail("pull_stream", KeyboardInterrupt())
    with pytest.raises(RoscoeError) as caught:
        pull_image(engine, "img:v1")
    assert caught.value.exit_code == 130
    assert caught.value.message == "pull of img:v1 interrupted"
