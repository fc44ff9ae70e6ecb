"""The execution service in the runner image, over real HTTP, on Docker and on Podman."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from service_fixtures import DEMO_CASE, DEMO_SCRIPT, Answer, LiveService, start_service

from helpers import ROOTLESS, RUNNER_IMAGE, roscoe

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.engine, pytest.mark.image]


@pytest.fixture(params=["docker", "podman", ROOTLESS])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The service on rootless Podman too, in a runner as its user starts it (keep-id)."""
    return str(request.param)


def test_health_answers_without_a_token(start_service: Any) -> None:
    live: LiveService = start_service()
    health = live.health()
    assert health["status"] == "ok"
    assert health["engine"]["kind"] == live.engine_name
    assert health["engine"]["version"]
    assert (health["runs_in_flight"], health["runs_queued"]) == (0, 0)
    assert health["version"]


def test_an_authorised_run_of_the_demo_case(start_service: Any) -> None:
    live: LiveService = start_service()
    answer = live.post_run({"case": DEMO_CASE, "script": DEMO_SCRIPT, "args": []})
    assert answer.status == 200, answer.body
    record = answer.json()
    assert record["status"] == "succeeded", record
    assert record["exit_code"] == 0
    assert record["timed_out"] is False
    assert record["duration_s"] > 0
    assert record["output_truncated"] is False
    assert record["engine"] == live.engine_name
    run_id = record["id"]

    # The record went to the host's runs dir: the CLI on the host lists it.
    listed = roscoe("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert run_id in [r["id"] for r in json.loads(listed.stdout)]

    # And the service serves it back.
    assert live.request("GET", f"/runs/{run_id}").json()["id"] == run_id
    assert run_id in [r["id"] for r in live.request("GET", "/runs?limit=5").json()["runs"]]
    output = live.request("GET", f"/runs/{run_id}/output")
    assert output.status == 200
    assert output.body.decode() == record["output"]
    assert output.headers["X-Roscoe-Output-Truncated"] == "false"
    tail = live.request("GET", f"/runs/{run_id}/output?tail=10")
    assert tail.body == output.body[-10:]
    assert tail.headers["X-Roscoe-Output-Truncated"] == "true"
    assert live.run_containers() == []  # the one-shot container is gone

    # A run made by the CLI on the host is served too, even when roscoe runs as root (the
    # service is uid 1000 and the runs folder is handed to it).
    cli = roscoe(
        "run", "--workspace", str(live.workspace), "--image", RUNNER_IMAGE, "--json",
        DEMO_CASE, DEMO_SCRIPT,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    cli_id = json.loads(cli.stdout)["id"]
    assert live.request("GET", f"/runs/{cli_id}").json()["status"] == "succeeded"
    assert live.request("GET", f"/runs/{cli_id}/output").status == 200


def test_a_failing_script_comes_back_with_its_exit_code(start_service: Any) -> None:
    live: LiveService = start_service()
    record = live.post_run({"case": DEMO_CASE, "script": "fail.py"}).json()
    assert (record["status"], record["exit_code"]) == ("failed", 3)
    assert "about to fail" in record["output"]


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_a_missing_or_wrong_token_is_refused(start_service: Any, token: str | None) -> None:
    live: LiveService = start_service()
    for method, path, body in [
        ("POST", "/runs", json.dumps({"case": DEMO_CASE, "script": DEMO_SCRIPT}).encode()),
        ("GET", "/runs", None),
        ("GET", "/runs/20260101-000000-abcdef12", None),
    ]:
        answer = live.request(method, path, body, token=token)
        assert answer.status == 401, (method, path)
        assert answer.headers.get("WWW-Authenticate") == "Bearer"
        assert set(answer.json()) == {"error"}
    assert live.saved_run_ids() == []
    assert live.run_containers() == []


BAD_BODIES: list[tuple[str, bytes, int]] = [
    ("invalid json", b"{nope", 400),
    ("not an object", b"[]", 400),
    ("unknown field", json.dumps({"case": DEMO_CASE, "script": DEMO_SCRIPT, "x": 1}).encode(), 400),
    (
        "wrong type",
        json.dumps({"case": DEMO_CASE, "script": DEMO_SCRIPT, "args": "a"}).encode(),
        400,
    ),
    ("traversal", json.dumps({"case": "../..", "script": DEMO_SCRIPT}).encode(), 400),
    ("absolute", json.dumps({"case": "/etc", "script": DEMO_SCRIPT}).encode(), 400),
    ("missing case", json.dumps({"case": "no-such-case", "script": DEMO_SCRIPT}).encode(), 400),
    ("missing script", json.dumps({"case": DEMO_CASE, "script": "nope.py"}).encode(), 400),
    (
        "zero timeout",
        json.dumps({"case": DEMO_CASE, "script": DEMO_SCRIPT, "timeout": 0}).encode(),
        400,
    ),
    (
        "absurd timeout",
        json.dumps({"case": DEMO_CASE, "script": DEMO_SCRIPT, "timeout": 1e9}).encode(),
        400,
    ),
    ("oversized", b"{" + b" " * (64 * 1024 + 1) + b"}", 413),
]


def test_bad_input_is_refused_and_nothing_runs(start_service: Any) -> None:
    live: LiveService = start_service()
    for what, body, status in BAD_BODIES:
        answer = live.request("POST", "/runs", body)
        assert answer.status == status, (what, answer.body)
        reason = answer.json()["error"]
        assert reason and "\n" not in reason, what
    assert live.request("GET", "/nowhere").status == 404
    assert live.request("DELETE", "/runs").status == 405
    assert live.saved_run_ids() == []
    assert live.run_containers() == []
    assert "run_started" not in live.logs()


def test_beyond_the_queue_requests_get_429_and_health_still_answers(start_service: Any) -> None:
    live: LiveService = start_service(concurrency=1, queue=1)
    answers: list[Answer] = []
    slow = {"case": DEMO_CASE, "script": "sleep.py", "args": ["4"]}
    threads = [
        threading.Thread(target=lambda: answers.append(live.post_run(slow))) for _ in range(2)
    ]
    threads[0].start()
    live.wait_for(lambda: live.health()["runs_in_flight"] == 1, "the first run in flight")
    threads[1].start()
    live.wait_for(
        lambda: (live.health()["runs_in_flight"], live.health()["runs_queued"]) == (1, 1),
        "one run in flight and one queued",
    )
    third = live.post_run(slow)
    assert third.status == 429
    assert int(third.headers["Retry-After"]) > 0
    assert live.health()["status"] == "ok"
    for thread in threads:
        thread.join(120)
    assert sorted(a.status for a in answers) == [200, 200]
    assert all(a.json()["status"] == "succeeded" for a in answers)


def test_sigterm_with_a_run_in_flight_leaves_no_orphans(start_service: Any) -> None:
    live: LiveService = start_service(shutdown_grace=1)
    answers: list[Answer] = []
    request = threading.Thread(
        target=lambda: answers.append(
            live.post_run({"case": DEMO_CASE, "script": "sleep.py", "args": ["300"]})
        )
    )
    request.start()
    live.wait_for(lambda: bool(live.run_containers()), "the run's container")
    live.wait_for(lambda: live.health()["runs_in_flight"] == 1, "the run in flight")
    # docker/podman stop: SIGTERM, then SIGKILL only after the (long) timeout.
    live.engine.stop_container(live.container_id, 60)
    request.join(60)
    state = live.engine.inspect_container(live.container_id)["State"]
    assert state["ExitCode"] == 0, live.logs()
    assert live.run_containers() == [], "a run container outlived the service"
    assert answers and answers[0].status == 200
    assert answers[0].json()["status"] == "interrupted"
    events = [
        json.loads(line)["event"] for line in live.logs().splitlines() if line.startswith("{")
    ]
    assert events[-1] == "shutdown"
    assert "run_finished" in events


def test_secrets_never_reach_the_log(start_service: Any) -> None:
    live: LiveService = start_service()
    secret, bogus = "s3cr3t-value", "bogus-credential-9f8e7d"
    answer = live.post_run(
        {"case": DEMO_CASE, "script": "show_env.py", "env": {"API_TOKEN": secret}}
    )
    assert answer.status == 200
    assert "API_TOKEN" in answer.json()["output"]  # the run did get the variable
    assert live.request("GET", "/runs", token=bogus).status == 401
    log = live.logs()
    assert "run_finished" in log
    for leaked in (secret, bogus, live.token):
        assert leaked not in log
    for line in log.splitlines():
        json.loads(line)  # one JSON object per line, nothing else
