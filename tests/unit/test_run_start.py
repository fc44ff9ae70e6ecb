"""The pull-when-absent policy every caller shares (roscoe.runs.start): `roscoe run` and the
service try the run at once, and pull only when the image turns out to be absent."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roscoe.engine.fake import FakeEngine
from roscoe.errors import EngineError, ImageError, Interrupted
from roscoe.images.choice import ImageChoice
from roscoe.runs import start
from roscoe.runs.records import RunRecord
from roscoe.runs.spec import RunSpec
from roscoe.runs.workspace import Workspace

SPEC = RunSpec(case="c", script="s.py", args=[], image="reg:5000/img:v1")
WORKSPACE = Workspace(Path("/nonexistent/ws"))  # `execute` is replaced: nothing looks at it


def fake(present: bool) -> FakeEngine:
    """The engine, with or without the image; the policy itself asks only whether it is there."""
    engine = FakeEngine()
    if present:
        engine.add_image(SPEC.image)
    return engine


def inspected(engine: FakeEngine) -> list[str | None]:
    return [call.target for call in engine.calls if call.method == "image_inspect"]


class Calls:
    """`execute` and `ensure_image` as the policy calls them, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_first: BaseException | None):
        self.log: list[str] = []
        self.fail_first = fail_first
        self.pull_args: tuple[Any, ...] = ()
        monkeypatch.setattr(start, "execute", self.execute)
        monkeypatch.setattr("roscoe.images.ensure.ensure_image", self.ensure_image)

    def execute(self, engine: Any, workspace: Any, spec: RunSpec, **kwargs: Any) -> RunRecord:
        self.log.append("execute")
        if self.fail_first is not None:
            failure, self.fail_first = self.fail_first, None
            raise failure
        return RunRecord(id="r1", case=spec.case, script=spec.script, status="succeeded")

    def ensure_image(self, *args: Any) -> None:
        self.log.append("pull")
        self.pull_args = args


def test_a_present_image_costs_no_extra_engine_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, fail_first=None)
    engine = fake(present=True)
    record = start.start_run(engine, WORKSPACE, SPEC)
    assert record.status == "succeeded"
    assert calls.log == ["execute"]
    assert inspected(engine) == []


def test_an_absent_image_is_pulled_with_the_missing_policy_then_the_run_goes_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls(monkeypatch, fail_first=ImageError("absent"))
    engine = fake(present=False)
    shown: list[str] = []

    @contextlib.contextmanager
    def pulling(ref: str) -> Iterator[Any]:
        shown.append(ref)
        yield print

    choice = ImageChoice(SPEC.image, "--image")
    record = start.start_run(engine, WORKSPACE, SPEC, choice=choice, pulling=pulling)
    assert record.status == "succeeded"
    assert calls.log == ["execute", "pull", "execute"]
    assert inspected(engine) == [SPEC.image]
    assert shown == [SPEC.image]
    assert calls.pull_args == (engine, choice, "missing", print)


def test_the_service_pulls_too_without_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, fail_first=ImageError("absent"))
    start.start_run(fake(present=False), WORKSPACE, SPEC)
    _, choice, policy, progress = calls.pull_args
    assert (choice.ref, policy, progress) == (SPEC.image, "missing", None)
    assert not choice.local_only


def test_an_image_error_with_the_image_present_is_not_a_reason_to_pull(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls(monkeypatch, fail_first=ImageError("something else"))
    with pytest.raises(ImageError, match="something else"):
        start.start_run(fake(present=True), WORKSPACE, SPEC)
    assert calls.log == ["execute"]


def test_other_failures_are_not_looked_into(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, fail_first=EngineError("down"))
    engine = fake(present=False)
    with pytest.raises(EngineError):
        start.start_run(engine, WORKSPACE, SPEC)
    assert calls.log == ["execute"]
    assert inspected(engine) == []


def test_a_stop_asked_for_before_the_pull_means_nothing_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls(monkeypatch, fail_first=ImageError("absent"))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Interrupted, match="before pulling reg:5000/img:v1; nothing ran") as caught:
        start.start_run(fake(present=False), WORKSPACE, SPEC, cancel=cancel)
    assert caught.value.exit_code == 130
    assert calls.log == ["execute"]


def test_ctrl_c_during_the_pull_means_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, fail_first=ImageError("absent"))

    def interrupted(*args: Any) -> None:
        calls.log.append("pull")
        raise KeyboardInterrupt

    monkeypatch.setattr("roscoe.images.ensure.ensure_image", interrupted)
    with pytest.raises(Interrupted, match="while pulling reg:5000/img:v1; nothing ran"):
        start.start_run(fake(present=False), WORKSPACE, SPEC)
    assert calls.log == ["execute", "pull"]
