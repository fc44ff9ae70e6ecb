"""The runner's lifecycle and status, against a fake Engine (the seam); no real engine.

Real engines are exercised in tests/integration/test_server.py.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from roscoe import __version__
from roscoe.config import paths
from roscoe.config.settings import Settings
from roscoe.engine.fake import Call, FakeEngine, Program
from roscoe.errors import ImageError, OperationFailed, UsageError
from roscoe.images.version import DEV_IMAGE
from roscoe.labels import LABEL_KIND, LABEL_MANAGED_BY
from roscoe.runner import health, lifecycle, status
from roscoe.runner import store as state
from roscoe.runner.store import StartSettings

OURS = {LABEL_MANAGED_BY: "roscoe", LABEL_KIND: "server"}
NAME = "roscoe-unit-runner"


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """/health answers (or not) without a real service; no port is really in use."""
    world = {"answering": True, "port_in_use": False, "engine_reachable": True}

    def probe(port: int, timeout: float = 1.0, *, engine: bool = False) -> health.Health:
        payload: dict[str, Any] = {"runs_in_flight": 2}
        if engine:
            payload["engine_reachable"] = world["engine_reachable"]
            payload["engine_error"] = None if world["engine_reachable"] else "connection refused"
        return health.Health(world["answering"], 200 if world["answering"] else None, 1.5, payload)

    monkeypatch.setattr(health, "probe", probe)
    monkeypatch.setattr(health, "port_in_use", lambda port: world["port_in_use"])
    return world


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ROSCOE_CONTAINER_NAME", NAME)
    return Settings()


@pytest.fixture
def fake() -> FakeEngine:
    """The fake engine with the runner image, whose containers run until stopped."""
    engine = FakeEngine()
    engine.add_image(DEV_IMAGE)
    engine.default_program = Program(until_stopped=True)
    return engine


def local() -> StartSettings:
    return StartSettings(use_local_image=True, port=18765)


def start(
    fake: FakeEngine, settings: Settings, wanted: StartSettings | None = None, **kwargs: Any
) -> lifecycle.StartResult:
    return lifecycle.start(fake, settings, wanted or local(), **kwargs)


def test_start_creates_labelled_runner_and_stores_id(fake, settings, answering) -> None:
    result = start(fake, settings)
    assert result.outcome == "started"
    container = fake.inspect_container(NAME)
    assert container is not None and container["Id"] == result.container_id
    assert container["Config"]["Labels"][LABEL_MANAGED_BY] == "roscoe"
    assert container["Config"]["Labels"][LABEL_KIND] == "server"
    assert state.read_container_id() == result.container_id
    assert result.endpoint == "http://127.0.0.1:18765"
    token = paths.token_file()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    if os.getuid() == 0:  # the service runs as uid 1000 and must read the token and runs
        assert token.stat().st_uid == 1000
        assert paths.runs_dir().stat().st_uid == 1000
        assert stat.S_IMODE(paths.data_dir().stat().st_mode) == 0o700


def test_already_running_changes_nothing(fake, settings, answering) -> None:
    first = start(fake, settings)
    changes = len(fake.changes())
    second = start(fake, settings)
    assert second.outcome == "already running"
    assert second.container_id == first.container_id
    assert fake.changes()[changes:] == []


def test_stale_stored_id_is_forgotten(fake, settings, answering) -> None:
    state.write_container_id("f" * 64)
    result = start(fake, settings)
    assert result.outcome == "started"
    assert state.read_container_id() == result.container_id


def test_foreign_container_with_the_name_is_refused(fake, settings, answering) -> None:
    foreign = fake.add_container(NAME, labels={})
    with pytest.raises(OperationFailed) as caught:
        start(fake, settings)
    assert "not roscoe's" in caught.value.message
    assert "--replace" in (caught.value.hint or "")
    assert foreign in fake.containers_by_id  # untouched


def test_replace_removes_the_foreign_container(fake, settings, answering) -> None:
    foreign = fake.add_container(NAME, labels={})
    result = start(fake, settings, replace=True)
    assert foreign not in fake.containers_by_id
    assert fake.inspect_container(NAME)["Id"] == result.container_id


@pytest.mark.parametrize("old_status", ["exited", "created", "dead"])
def test_stopped_runner_is_replaced(fake, settings, answering, old_status) -> None:
    old = fake.add_container(NAME, labels=OURS, status=old_status)
    result = start(fake, settings)
    assert result.outcome == "replaced"
    assert old not in fake.containers_by_id
    assert result.container_id != old


def test_runner_on_another_image_is_replaced(fake, settings, answering) -> None:
    first = start(fake, settings)
    fake.add_image(DEV_IMAGE)  # rebuilt: the tag now names a new image ID
    fake.images[DEV_IMAGE]["Id"] = "sha256:" + "e" * 64
    second = start(fake, settings)
    assert second.outcome == "replaced"
    assert "another image" in (second.replaced_because or "")
    assert first.container_id not in fake.containers_by_id


def test_port_in_use_is_refused_before_creating(fake, settings, answering) -> None:
    answering["port_in_use"] = True
    with pytest.raises(OperationFailed) as caught:
        start(fake, settings)
    assert "--port" in (caught.value.hint or "")
    assert "create_container" not in fake.methods()


def test_crash_at_start_shows_last_lines_and_leaves_nothing(fake, settings, answering) -> None:
    answering["answering"] = False
    last_words = b"\n".join(b"line %d" % i for i in range(30)) + b"\nNo module named x"
    fake.programs[DEV_IMAGE] = Program(output=[("stderr", last_words)], exit_code=3)
    with pytest.raises(lifecycle.StartFailed) as caught:
        start(fake, settings)
    assert len(caught.value.log_lines) == 20
    assert caught.value.log_lines[-1] == "No module named x"
    assert "runner image" in (caught.value.hint or "")
    assert fake.containers_by_id == {}
    assert state.read_container_id() is None


def test_wait_timeout_fails_and_removes(fake, settings, answering) -> None:
    answering["answering"] = False
    with pytest.raises(lifecycle.StartFailed) as caught:
        start(fake, settings, wait_timeout=0.3)
    assert "did not answer" in caught.value.message
    assert caught.value.exit_code == 1
    assert fake.containers_by_id == {}


def test_missing_local_image_is_exit_4(settings, answering) -> None:
    with pytest.raises(ImageError) as caught:
        start(FakeEngine(), settings)
    assert caught.value.exit_code == 4


def test_named_workspace_must_exist(fake, settings, answering, tmp_path: Path) -> None:
    wanted = StartSettings(use_local_image=True, workspace=str(tmp_path / "nope"))
    with pytest.raises(UsageError):
        start(fake, settings, wanted=wanted)
    assert fake.calls == []


def test_bad_pull_policy_is_usage_error(fake, settings, answering) -> None:
    with pytest.raises(UsageError):
        start(fake, settings, wanted=StartSettings(use_local_image=True, pull="sometimes"))


def test_env_values_stay_out_of_settings_json(fake, settings, answering) -> None:
    wanted = StartSettings(use_local_image=True, port=18765, env={"API_KEY": "s3cret"})
    start(fake, settings, wanted=wanted)
    saved = paths.server_settings_file().read_text()
    assert "s3cret" not in saved
    assert json.loads(saved)["env"] == ["API_KEY"]
    assert stat.S_IMODE(paths.server_env_file().stat().st_mode) == 0o600
    assert state.load_settings().env == {"API_KEY": "s3cret"}


def test_restart_makes_a_new_container_with_the_same_settings(fake, settings, answering) -> None:
    wanted = StartSettings(use_local_image=True, port=18999, env={"MODE": "fast"})
    first = start(fake, settings, wanted=wanted)
    second = lifecycle.restart(fake, settings)
    assert second.container_id != first.container_id
    assert first.container_id not in fake.containers_by_id
    env = fake.inspect_container(NAME)["Config"]["Env"]
    assert "ROSCOE_PORT=18999" in env and "MODE=fast" in env


def test_stop_removes_and_clears_id(fake, settings, answering) -> None:
    first = start(fake, settings)
    result = lifecycle.stop(fake, settings, timeout=1)
    assert result.outcome == "stopped"
    assert Call("stop_container", first.container_id) in fake.calls
    assert fake.containers_by_id == {}
    assert state.read_container_id() is None
    assert lifecycle.stop(fake, settings).outcome == "not running"


def test_stop_leaves_a_foreign_container_alone(fake, settings, answering) -> None:
    foreign = fake.add_container(NAME, labels={})
    assert lifecycle.stop(fake, settings).outcome == "not running"
    assert foreign in fake.containers_by_id


def test_the_lock_serialises_starts(fake, settings, answering) -> None:
    results: list[lifecycle.StartResult] = []
    threads = [threading.Thread(target=lambda: results.append(start(fake, settings)))]
    threads.append(threading.Thread(target=lambda: results.append(start(fake, settings))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["already running", "started"]
    assert len(fake.containers_by_id) == 1


def test_lock_gives_up_at_its_deadline() -> None:
    # flock locks belong to the open file: a second open in this process conflicts too
    with state.start_lock(), pytest.raises(OperationFailed), state.start_lock(deadline_s=0.2):
        pass


# -- status: the JSON keys are a contract ---------------------------------------------------
CONTRACT = {
    "state",
    "name",
    "container_id",
    "image",
    "image_version",
    "cli_version",
    "engine",
    "health",
    "endpoint",
    "token_file",
    "workspace",
}


def test_status_json_running(fake, settings, answering) -> None:
    result = start(fake, settings)
    data = status.server_status(fake, settings).to_json()
    assert set(data) >= CONTRACT
    assert data["state"] == "running"
    assert data["name"] == NAME
    assert data["container_id"] == result.container_id
    assert data["image"] == DEV_IMAGE
    assert data["image_version"] == "0.1.0"
    assert data["cli_version"] == __version__
    assert data["engine"]["kind"] == "docker"
    assert data["health"]["answering"] is True
    assert data["health"]["latency_ms"] == 1.5
    assert data["endpoint"] == "http://127.0.0.1:18765"
    assert data["token_file"] == str(paths.token_file())
    assert data["workspace"] == str(paths.default_workspace().resolve())
    assert data["runs_in_flight"] == 2
    json.dumps(data)  # serialisable as is


def test_status_starting_when_health_does_not_answer(fake, settings, answering) -> None:
    start(fake, settings)
    answering["answering"] = False
    found = status.server_status(fake, settings)
    assert found.state == "starting"
    assert not found.healthy


def test_a_runner_that_cannot_reach_its_engine_is_degraded_and_replaced(
    fake, settings, answering
) -> None:
    # Its service answers /health, but not one run could work (issue 10: a runner holding a
    # socket the engine had replaced said "already running").
    first = start(fake, settings)
    answering["engine_reachable"] = False
    found = status.server_status(fake, settings)
    assert (found.state, found.healthy) == ("degraded", False)
    data = found.to_json()
    assert data["health"]["engine_reachable"] is False
    assert data["health"]["engine_error"] == "connection refused"
    again = start(fake, settings)
    assert again.outcome == "replaced" and again.container_id != first.container_id
    assert again.replaced_because == "it cannot reach the engine (connection refused)"
    answering["engine_reachable"] = True
    assert start(fake, settings).outcome == "already running"
    assert status.server_status(fake, settings).state == "running"


def test_status_exited_with_code(fake, settings, answering) -> None:
    fake.add_container(NAME, labels=OURS, status="exited", exit_code=1)
    data = status.server_status(fake, settings).to_json()
    assert data["state"] == "exited"
    assert data["exit_code"] == 1


def test_status_absent(fake, settings, answering) -> None:
    data = status.server_status(fake, settings).to_json()
    assert data["state"] == "absent"
    assert data["container_id"] is None
    assert set(data) >= CONTRACT


def test_status_does_not_claim_a_foreign_container(fake, settings, answering) -> None:
    fake.add_container(NAME, labels={})
    data = status.server_status(fake, settings).to_json()
    assert data["state"] == "absent"
    assert data["name_taken_by_foreign_container"] is True


def test_likely_causes() -> None:
    assert "--port" in lifecycle.likely_cause("OSError: Address already in use", 1)
    assert "socket" in lifecycle.likely_cause("PermissionError: permission denied: engine.sock", 1)
    assert "runner image" in lifecycle.likely_cause("", 127)


# -- settings reach the runner, and a change replaces it ---------------------------------------
def _env_of(fake: FakeEngine) -> dict[str, str]:
    inspected = fake.inspect_container(NAME)
    assert inspected is not None
    return dict(item.split("=", 1) for item in inspected["Config"]["Env"])


def test_run_limits_are_resolved_here_and_handed_to_the_service(
    fake, answering, monkeypatch
) -> None:
    monkeypatch.setenv("ROSCOE_CONTAINER_NAME", NAME)
    monkeypatch.setenv("ROSCOE_TIMEOUT", "2")
    monkeypatch.setenv("ROSCOE_MEMORY", "64m")
    monkeypatch.setenv("ROSCOE_CPUS", "1.5")
    monkeypatch.setenv("ROSCOE_NETWORK", "host")
    start(fake, Settings())
    env = _env_of(fake)
    assert (env["ROSCOE_TIMEOUT"], env["ROSCOE_MEMORY"]) == ("2", "64m")
    assert (env["ROSCOE_CPUS"], env["ROSCOE_NETWORK"]) == ("1.5", "host")

    monkeypatch.setenv("ROSCOE_TIMEOUT", "5")
    again = start(fake, Settings())
    assert again.outcome == "replaced"
    assert "other settings" in (again.replaced_because or "")
    assert _env_of(fake)["ROSCOE_TIMEOUT"] == "5"


def test_a_cpu_limit_above_the_engines_cpus_stops_the_start(fake, answering, monkeypatch) -> None:
    monkeypatch.setenv("ROSCOE_CPUS", "3")
    with pytest.raises(UsageError, match="a CPU limit of 3 is more than the 2 CPUs docker has"):
        start(fake, Settings())
    assert fake.containers_by_id == {}  # refused before anything was created


def test_run_limits_default_without_cpus(fake, settings, answering) -> None:
    start(fake, settings)
    env = _env_of(fake)
    assert (env["ROSCOE_TIMEOUT"], env["ROSCOE_MEMORY"], env["ROSCOE_NETWORK"]) == (
        "300",
        "2g",
        "none",
    )
    assert "ROSCOE_CPUS" not in env


SECRET = "s3cret-value"


def test_changed_env_replaces_the_runner_and_settings_follow(fake, settings, answering) -> None:
    first = start(
        fake,
        settings,
        wanted=StartSettings(use_local_image=True, port=18765, env={"SECRET_TOKEN": SECRET}),
    )
    label = fake.inspect_container(NAME)["Config"]["Labels"]["io.roscoe.config-hash"]
    assert SECRET not in label
    same = start(
        fake,
        settings,
        wanted=StartSettings(use_local_image=True, port=18765, env={"SECRET_TOKEN": SECRET}),
    )
    assert (same.outcome, same.container_id) == ("already running", first.container_id)
    other = start(
        fake, settings, wanted=StartSettings(use_local_image=True, port=18765, env={"OTHER": "1"})
    )
    assert other.outcome == "replaced"
    assert "SECRET_TOKEN" not in _env_of(fake) and _env_of(fake)["OTHER"] == "1"
    assert state.load_settings().env == {"OTHER": "1"}  # what really runs


def test_changed_concurrency_replaces_the_runner(fake, answering, monkeypatch) -> None:
    monkeypatch.setenv("ROSCOE_CONTAINER_NAME", NAME)
    start(fake, Settings())
    monkeypatch.setenv("ROSCOE_SERVICE_CONCURRENCY", "7")
    assert start(fake, Settings()).outcome == "replaced"
    assert _env_of(fake)["ROSCOE_SERVICE_CONCURRENCY"] == "7"


def test_a_runner_without_the_hash_label_is_replaced(fake, settings, answering) -> None:
    start(fake, settings)
    runner_id = fake.inspect_container(NAME)["Id"]
    del fake.containers_by_id[runner_id]["Config"]["Labels"]["io.roscoe.config-hash"]
    assert start(fake, settings).outcome == "replaced"


# -- nothing is removed before the image and the port are known to be fine -------------------
def test_busy_new_port_leaves_the_running_runner(fake, settings, answering) -> None:
    first = start(fake, settings)
    answering["port_in_use"] = True  # something else holds the new port
    with pytest.raises(OperationFailed) as caught:
        start(fake, settings, wanted=StartSettings(use_local_image=True, port=18799))
    assert "in use" in caught.value.message
    assert first.container_id in fake.containers_by_id
    assert fake.containers_by_id[first.container_id]["State"]["Status"] == "running"
    assert state.read_container_id() == first.container_id


def test_busy_port_leaves_the_foreign_container_even_with_replace(
    fake, settings, answering
) -> None:
    foreign = fake.add_container(NAME, labels={})
    answering["port_in_use"] = True
    with pytest.raises(OperationFailed):
        start(fake, settings, replace=True)
    assert foreign in fake.containers_by_id


def test_missing_image_leaves_the_running_runner(fake, settings, answering) -> None:
    first = start(fake, settings)
    with pytest.raises(ImageError):
        start(fake, settings, wanted=StartSettings(image="nowhere.invalid/x:1", pull="never"))
    assert first.container_id in fake.containers_by_id


# -- timeouts ---------------------------------------------------------------------------------
def test_stop_timeout_zero_kills_at_once(fake, settings, answering, monkeypatch) -> None:
    from roscoe.runner import container as runner

    start(fake, settings)
    seen: list[float | None] = []
    real = runner.remove
    monkeypatch.setattr(
        runner,
        "remove",
        lambda e, cid, stop_timeout=None: (seen.append(stop_timeout), real(e, cid)),
    )
    lifecycle.stop(fake, settings, timeout=0)
    assert seen == [0]


@pytest.mark.parametrize("wait", [0, -1])
def test_wait_timeout_must_be_positive(fake, settings, answering, wait) -> None:
    with pytest.raises(UsageError):
        start(fake, settings, wait_timeout=wait)
    with pytest.raises(UsageError):
        lifecycle.restart(fake, settings, wait_timeout=wait)
    assert fake.calls == []


def test_negative_stop_timeout_is_usage_error(fake, settings, answering) -> None:
    with pytest.raises(UsageError):
        lifecycle.stop(fake, settings, timeout=-1)


# -- image warnings reach the result ------------------------------------------------------------
def test_start_returns_the_image_warnings(fake, settings, answering) -> None:
    fake.add_image("example.invalid/runner:latest", version="0.0.1")
    result = start(fake, settings, wanted=StartSettings(image="example.invalid/runner:latest"))
    text = " ".join(message for message, _ in result.warnings)
    assert "not pinned" in text
    assert "0.0.1" in text
    again = start(fake, settings, wanted=StartSettings(image="example.invalid/runner:latest"))
    assert again.outcome == "already running" and again.warnings


# -- reads never forget the stored ID -----------------------------------------------------------
def test_status_leaves_a_stale_stored_id_alone(fake, settings, answering) -> None:
    state.write_container_id("f" * 64)
    assert status.server_status(fake, settings).state == "absent"
    assert state.read_container_id() == "f" * 64  # a start under the lock may have written it


# -- doctor looks at the runner once ------------------------------------------------------------
def test_doctor_computes_the_runner_status_once(fake, settings, answering, monkeypatch) -> None:
    from roscoe.diagnostics import doctor as about

    start(fake, settings)
    calls: list[int] = []
    real = status.server_status
    monkeypatch.setattr(status, "server_status", lambda e, s: (calls.append(1), real(e, s))[1])
    report = about.doctor_report(lambda: fake, DEV_IMAGE, "--use-local-image", settings)
    names = [c.name for c in report.checks]
    assert names[-3:] == ["runner", "runner version", "runner port"]
    assert calls == [1]


def test_a_privileged_port_is_refused_before_the_engine(fake, settings) -> None:
    with pytest.raises(UsageError, match="port 81 is privileged"):
        lifecycle.start(fake, settings, StartSettings(use_local_image=True, port=81))
    assert fake.calls == []


def test_likely_cause_reads_the_runners_words_not_roscoes() -> None:
    hint = lifecycle.likely_cause("PermissionError: [Errno 13] Permission denied", 1)
    assert "engine socket" not in hint
    socket_hint = lifecycle.likely_cause(
        '{"event": "startup_failed", "error": "permission denied on /run/roscoe/engine.sock"}', 1
    )
    assert "engine socket" in socket_hint


def test_start_stops_the_runs_a_killed_runner_left_and_finishes_their_records(
    fake, settings, answering
) -> None:
    from roscoe.labels import LABEL_OWNER_CONTAINER, LABEL_OWNER_STARTED, LABEL_RUN_ID
    from roscoe.runs.records import RunRecord, load_run, write_record

    first = start(fake, settings)
    killed = fake.containers_by_id[first.container_id]
    killed["State"].update(Status="exited", Running=False)  # `docker kill`: its runs run on
    write_record(RunRecord(id="run-in-flight", case="c", script="s.py"))
    run_id = fake.add_container(
        "roscoe-run-run-in-flight",
        labels={
            LABEL_MANAGED_BY: "roscoe",
            LABEL_KIND: "run",
            LABEL_RUN_ID: "run-in-flight",
            LABEL_OWNER_CONTAINER: first.container_id,
            LABEL_OWNER_STARTED: killed["State"]["StartedAt"],
        },
    )
    fake.containers_by_id[run_id]["State"]["Running"] = True
    again = start(fake, settings)
    assert again.outcome == "replaced"
    assert [item.run_id for item in again.swept] == ["run-in-flight"]
    assert run_id not in fake.containers_by_id
    assert "is gone" in again.swept[0].reason  # the old runner was replaced: removed
    assert load_run("run-in-flight").status == "interrupted"


def test_the_runner_knows_its_name_and_ties_runs_to_its_container(
    fake, settings, answering
) -> None:
    from roscoe.labels import LABEL_OWNER_CONTAINER, LABEL_OWNER_PID, LABEL_OWNER_STARTED
    from roscoe.runs.plan import run_labels
    from roscoe.service.owner import runner_owner

    runner_id = fake.add_container(NAME, labels=OURS)
    owner = runner_owner(fake, NAME)  # type: ignore[arg-type]
    assert owner == {
        LABEL_OWNER_CONTAINER: runner_id,
        LABEL_OWNER_STARTED: "2024-05-01T12:00:00.123456789Z",
    }
    labels = run_labels("r1", 0.0, 10, owner)
    assert labels[LABEL_OWNER_CONTAINER] == runner_id and LABEL_OWNER_PID not in labels
    fake.add_container("stranger", labels={})
    assert runner_owner(fake, "stranger") == {}  # type: ignore[arg-type]
    assert runner_owner(fake, "absent") == {}  # type: ignore[arg-type]
    assert f"ROSCOE_CONTAINER_NAME={NAME}" in _env_list(fake, start(fake, settings))


def _env_list(fake: FakeEngine, result: lifecycle.StartResult) -> list[str]:
    return list(fake.containers_by_id[result.container_id]["Config"]["Env"])


# -- upgrades: a runner on another roscoe version ----------------------------------------------
OLD_IMAGE = "roscoe-runner:old"


def test_a_runner_on_another_version_stays_until_replace(fake, settings, answering) -> None:
    fake.add_image(OLD_IMAGE, version="0.0.1")
    fake.images[DEV_IMAGE]["Config"]["Labels"]["org.opencontainers.image.version"] = __version__
    old = start(fake, settings, wanted=StartSettings(image=OLD_IMAGE, port=18765))
    assert status.server_status(fake, settings).image_version == "0.0.1"

    kept = start(fake, settings)  # the new CLI's image: same settings otherwise
    assert kept.outcome == "already running"
    assert kept.container_id == old.container_id
    message, hint = kept.warnings[-1]
    assert f"the runner is on roscoe 0.0.1 ({OLD_IMAGE}); this CLI is {__version__}" in message
    assert "--replace" in (hint or "") and "restart" in (hint or "")
    assert state.load_settings().use_local_image is True  # `restart` moves it to the new one

    moved = start(fake, settings, replace=True)
    assert moved.outcome == "replaced"
    assert moved.replaced_because == f"it is on roscoe 0.0.1, this CLI is {__version__}"
    assert status.server_status(fake, settings).version_matches


def test_restart_moves_an_old_runner_to_this_version(fake, settings, answering) -> None:
    fake.add_image(OLD_IMAGE, version="0.0.1")
    fake.images[DEV_IMAGE]["Config"]["Labels"]["org.opencontainers.image.version"] = __version__
    start(fake, settings, wanted=StartSettings(image=OLD_IMAGE, port=18765))
    start(fake, settings)  # held, but remembered as what was asked for
    lifecycle.restart(fake, settings)
    now = status.server_status(fake, settings)
    assert (now.image_version, now.version_matches) == (__version__, True)


def test_an_old_runner_asked_for_other_settings_is_replaced_all_the_same(
    fake, settings, answering
) -> None:
    fake.add_image(OLD_IMAGE, version="0.0.1")
    start(fake, settings, wanted=StartSettings(image=OLD_IMAGE, port=18765))
    moved = start(fake, settings, wanted=StartSettings(use_local_image=True, port=18766))
    assert moved.outcome == "replaced"


def test_log_level_and_retention_are_handed_to_the_service(fake, answering, monkeypatch) -> None:
    monkeypatch.setenv("ROSCOE_CONTAINER_NAME", NAME)
    monkeypatch.setenv("ROSCOE_SERVICE_PRUNE", "yes")
    monkeypatch.setenv("ROSCOE_RUNS_KEEP", "50")
    start(fake, Settings(), wanted=StartSettings(use_local_image=True, port=18765))
    env = _env_of(fake)
    assert (env["ROSCOE_LOG_LEVEL"], env["ROSCOE_SERVICE_PRUNE"]) == ("info", "true")
    assert env["ROSCOE_RUNS_KEEP"] == "50"
    assert "ROSCOE_RUNS_OLDER_THAN" not in env
    again = start(
        fake, Settings(), wanted=StartSettings(use_local_image=True, port=18765, log_level="debug")
    )
    assert again.outcome == "replaced"
    assert _env_of(fake)["ROSCOE_LOG_LEVEL"] == "debug"
    assert state.load_settings().log_level == "debug"
