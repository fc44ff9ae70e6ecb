"""The one engine-error mapper: engines' answers (and silences) as RoscoeErrors with their codes."""

from __future__ import annotations

import errno

import pytest

from roscoe.engine import errors
from roscoe.engine.detect import Endpoint
from roscoe.engine.wire import WireError
from roscoe.errors import EngineError, ImageError, OperationFailed


class SdkRefusal(OSError):
    """What the docker SDK raises for an error answer: an OSError with a status code."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status} Client Error: {explanation}")
        self.status_code = status
        self.explanation = explanation


def test_an_answer_has_a_status_and_silence_has_none() -> None:
    assert errors.status_of(WireError(404, "no such container")) == 404
    assert errors.status_of(SdkRefusal(409, "conflict")) == 409
    assert errors.status_of(ConnectionResetError(errno.ECONNRESET, "reset")) is None
    assert errors.status_of(TimeoutError("timed out")) is None


def test_the_reason_is_the_engines_first_line_at_most_300_characters() -> None:
    assert errors.reason(WireError(500, "first\nsecond")) == "first"
    assert errors.reason(SdkRefusal(500, "explained")) == "explained"
    long = errors.reason(WireError(500, "x" * 400))
    assert len(long) == 300 and long.endswith("...")
    assert errors.reason(OSError()) == "OSError"


def test_a_refusal_is_exit_1_and_silence_exit_3() -> None:
    refused = errors.call_failed("podman", "could not start container r", WireError(500, "boom"))
    assert isinstance(refused, OperationFailed) and refused.exit_code == 1
    assert refused.message == "could not start container r: podman said: boom"
    silent = errors.call_failed("docker", "could not list containers", BrokenPipeError("pipe"))
    assert isinstance(silent, EngineError) and silent.exit_code == 3
    assert "stopped answering" in silent.message


def test_a_failure_during_a_run_is_125() -> None:
    failed = errors.run_failed("lost track of the run container", WireError(500, "gone\nmore"))
    assert failed.exit_code == 125
    assert failed.message == "lost track of the run container: gone"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (WireError(409, "Container abc is not running"), True),  # Docker
        (  # Podman
            WireError(
                500,
                "can only kill running containers. abc is in state exited: container state "
                "improper",
            ),
            True,
        ),
        (WireError(404, "no such container"), True),
        (WireError(500, "device or resource busy"), False),
        (ConnectionResetError(errno.ECONNRESET, "reset"), False),
    ],
)
def test_a_kill_that_finds_nothing_running(error: BaseException, expected: bool) -> None:
    assert errors.not_running(error) is expected


def test_a_removal_under_way_or_done_is_going_anyway() -> None:
    assert errors.going_anyway(WireError(404, "no such container"))
    assert errors.going_anyway(WireError(409, "removal of container abc is already in progress"))
    assert not errors.going_anyway(WireError(409, "container is running: stop it first"))


def test_a_pull_refused_is_exit_4_and_one_unanswered_exit_3() -> None:
    refused = errors.pull_failed("docker", "r:v1", SdkRefusal(404, "manifest unknown"))
    assert isinstance(refused, ImageError) and refused.exit_code == 4
    assert refused.message == "could not pull r:v1: manifest unknown"
    silent = errors.pull_failed("podman", "r:v1", ConnectionResetError(errno.ECONNRESET, "x"))
    assert isinstance(silent, EngineError) and silent.exit_code == 3
    assert silent.message.startswith("podman stopped answering while pulling r:v1")


def test_an_absent_image_is_exit_4_with_a_hint() -> None:
    missing = errors.image_missing("img:v1", "docker")
    assert missing.exit_code == 4
    assert missing.message == "image img:v1 is not present on docker"
    assert missing.hint is not None and "roscoe image pull" in missing.hint


def test_a_failed_first_contact_names_the_cause() -> None:
    named = Endpoint("unix:///run/nothing.sock", "DOCKER_HOST")
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    error = errors.connect_failure(named, OSError("wrapped"))
    assert "DOCKER_HOST" in error.message and error.exit_code == 3
    wrapped = OSError("outer")
    wrapped.__cause__ = refused
    assert "not running" in errors.connect_failure(named, wrapped).message
    probed = Endpoint("tcp://127.0.0.1:1", "probed socket", explicit=False)
    assert "does not answer" in errors.connect_failure(probed, ValueError("no")).message


def test_a_removal_podman_refuses_mid_state_change_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Podman's forced removal can find the container stopped between its look and its kill
    (a restart policy at work): "container state improper". A moment later it succeeds."""
    from roscoe.engine import engine as engine_module
    from roscoe.engine.engine import Engine
    from roscoe.engine.protocols import EngineInfo

    monkeypatch.setattr(engine_module, "REMOVE_RETRY_S", 0)
    refusal = WireError(500, "sending SIGKILL to container c1: container state improper: stopped")
    answers: list[Exception | None] = [refusal, refusal, None]

    class Wire:
        def call(self, method: str, path: str, **kw: object) -> None:
            answer = answers.pop(0)
            if answer is not None:
                raise answer

    engine = Engine.__new__(Engine)
    engine.info = EngineInfo("podman", "4.3.1", "1.41")
    engine._wire = Wire()  # type: ignore[assignment]
    assert engine.remove_container("c1") is True
    assert answers == []  # asked three times
    answers.extend([refusal] * 10)
    with pytest.raises(OperationFailed, match="container state improper"):
        engine.remove_container("c1")  # not for ever
    assert len(answers) == 10 - 1 - engine_module.REMOVE_RETRIES
