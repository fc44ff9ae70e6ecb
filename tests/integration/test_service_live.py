"""The agent surface of the execution service in the runner image, on Docker and on Podman:
discovery, runs without waiting, follow and events streams, cancel, metrics, a burst of 100
clients, clients that go away, and `roscoe server stop` with runs queued and running."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
from typing import Any

import pytest
from service_fixtures import DEMO_CASE, DEMO_SCRIPT, Answer, LiveService, start_service

from helpers import RUNNER_IMAGE, roscoe
from roscoe.config import paths

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.engine, pytest.mark.image]

NO_WAIT_SLEEP = {"case": DEMO_CASE, "script": "sleep.py", "args": ["300"], "wait": False}


def metric(live: LiveService, line_start: str) -> float:
    text = live.request("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def events(live: LiveService, run_id: str) -> list[tuple[str, Any]]:
    """Every Server-Sent Event of a run, until the stream ends."""
    answer = live.request("GET", f"/runs/{run_id}/events", timeout=120)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    found: list[tuple[str, Any]] = []
    for block in answer.body.decode().split("\n\n"):
        kind = re.search(r"^event: (.*)$", block, re.MULTILINE)
        data = re.search(r"^data: (.*)$", block, re.MULTILINE)
        if kind and data:
            found.append((kind.group(1), json.loads(data.group(1))))
    return found


def test_discovery_and_the_openapi_document(start_service: Any) -> None:
    live: LiveService = start_service()
    sub = live.workspace / "Tools" / "reports"
    sub.mkdir()
    (sub / "weekly.sh").write_text("#!/bin/sh\n# Writes the weekly report.\n#\n# Details.\necho\n")
    (live.workspace / "projects" / ".hidden").mkdir()
    cases = live.request("GET", "/cases").json()["cases"]
    assert [c["name"] for c in cases] == sorted(
        p.name for p in (live.workspace / "projects").iterdir() if not p.name.startswith(".")
    )
    assert all(c["modified_at"].endswith("Z") for c in cases)
    tools = {t["name"]: t for t in live.request("GET", "/tools").json()["tools"]}
    assert tools["reports/weekly.sh"] == {
        "name": "reports/weekly.sh",
        "kind": "shell",
        "description": "Writes the weekly report.",
    }
    assert tools[DEMO_SCRIPT]["kind"] == "python"
    assert tools[DEMO_SCRIPT]["description"]
    document = live.request("GET", "/openapi.json").json()
    assert {"/health", "/runs", "/runs/{id}/events", "/cases", "/tools"} <= set(document["paths"])
    ran = live.post_run({"case": DEMO_CASE, "script": "reports/weekly.sh"})
    assert ran.json()["status"] == "succeeded"
    for path in ("/cases", "/tools", "/metrics", "/openapi.json", "/runs/x/events"):
        assert live.request("GET", path, token="wrong").status == 401, path
        assert live.request("GET", path, token=None).status == 401, path
    assert live.request("DELETE", "/runs/x", token=None).status == 401


def test_a_run_without_waiting_with_follow_and_events(start_service: Any) -> None:
    live: LiveService = start_service()
    accepted = live.post_run(
        {"case": DEMO_CASE, "script": "sleep.py", "args": ["2"], "wait": False}
    )
    assert accepted.status == 202
    run_id = accepted.json()["id"]
    assert accepted.headers["Location"] == f"/runs/{run_id}"
    assert accepted.json()["status"] in ("queued", "running")
    followed = live.request("GET", f"/runs/{run_id}/output?follow=true", timeout=60)
    assert followed.status == 200
    assert followed.body == b"sleeping\nwoke up\n"  # the whole output, ending with the run
    record = live.request("GET", f"/runs/{run_id}").json()
    assert (record["status"], record["exit_code"]) == ("succeeded", 0)
    # Events of a run that is over: its output, then the final record.
    found = events(live, run_id)
    assert found[-1][0] == "status"
    assert found[-1][1]["status"] == "succeeded"
    assert [d for k, d in found if k == "output"] == [
        {"encoding": "utf-8", "data": "sleeping\nwoke up\n"}
    ]
    # Events of a live run: status running, output as it comes, the final record.
    second = live.post_run({"case": DEMO_CASE, "script": "sleep.py", "args": ["1"], "wait": False})
    found = events(live, second.json()["id"])
    kinds = [k for k, _ in found]
    assert kinds[0] == "status"
    assert found[0][1]["status"] in ("queued", "running")
    text = "".join(
        d["data"] if d["encoding"] == "utf-8" else base64.b64decode(d["data"]).decode()
        for k, d in found
        if k == "output"
    )
    assert text == "sleeping\nwoke up\n"
    assert found[-1] == ("status", found[-1][1])
    assert found[-1][1]["status"] == "succeeded"
    assert live.run_containers() == []


def test_cancel_a_running_and_a_queued_run(start_service: Any) -> None:
    live: LiveService = start_service(concurrency=1, queue=2)
    running = live.post_run(NO_WAIT_SLEEP).json()["id"]
    live.wait_for(lambda: bool(live.run_containers()), "the run's container")
    queued = live.post_run(NO_WAIT_SLEEP).json()
    assert queued["status"] == "queued"
    assert live.request("GET", f"/runs/{queued['id']}").json()["status"] == "queued"

    answer = live.request("DELETE", f"/runs/{queued['id']}")
    assert answer.status == 200, answer.body
    assert (answer.json()["status"], answer.json()["exit_code"]) == ("cancelled", 130)
    answer = live.request("DELETE", f"/runs/{running}")
    assert answer.status == 200, answer.body
    assert (answer.json()["status"], answer.json()["exit_code"]) == ("cancelled", 130)
    assert live.run_containers() == []
    # The records on the host say so too, and the queued run never made a container.
    shown = json.loads(roscoe("runs", "show", queued["id"], "--json").stdout)
    assert shown["status"] == "cancelled"
    assert json.loads(roscoe("runs", "show", running, "--json").stdout)["status"] == "cancelled"
    assert live.request("DELETE", f"/runs/{running}").status == 409
    assert live.request("DELETE", "/runs/20260101-000000-deadbeef").status == 404
    assert metric(live, 'roscoe_runs_total{status="cancelled"}') == 2


def test_metrics_count_what_happened(start_service: Any) -> None:
    live: LiveService = start_service(concurrency=1, queue=1)
    assert live.post_run({"case": DEMO_CASE, "script": DEMO_SCRIPT}).status == 200
    assert live.post_run({"case": DEMO_CASE, "script": "fail.py"}).status == 200
    slow = live.post_run(NO_WAIT_SLEEP).json()["id"]
    waiting = live.post_run(NO_WAIT_SLEEP).json()["id"]
    live.wait_for(lambda: metric(live, "roscoe_runs_queued") == 1, "a run queued")
    assert metric(live, "roscoe_runs_in_flight") == 1
    refused = live.post_run({"case": DEMO_CASE, "script": DEMO_SCRIPT})
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0
    live.request("DELETE", f"/runs/{waiting}")
    live.request("DELETE", f"/runs/{slow}")
    text = live.request("GET", "/metrics").body.decode()
    assert 'roscoe_runs_total{status="succeeded"} 1' in text
    assert 'roscoe_runs_total{status="failed"} 1' in text
    assert 'roscoe_runs_total{status="cancelled"} 2' in text
    assert "roscoe_run_duration_seconds_count 3" in text  # the queued one never ran
    assert "roscoe_runs_refused_total 1" in text
    assert "roscoe_runs_in_flight 0" in text
    assert f'engine="{live.engine_name}"' in text


def test_a_burst_of_100_clients_gets_answers_never_resets(start_service: Any) -> None:
    live: LiveService = start_service(concurrency=4, queue=16)
    answers: list[Answer | str] = []
    healthy: list[int] = []
    lock = threading.Lock()
    body = {"case": DEMO_CASE, "script": "sleep.py", "args": ["1"]}

    def client() -> None:
        try:
            answer: Answer | str = live.post_run(body, timeout=300)
        except (OSError, http.client.HTTPException) as exc:  # must never happen
            answer = f"{type(exc).__name__}: {exc}"
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        healthy.append(live.request("GET", "/health", token=None, timeout=10).status)
    for thread in threads:
        thread.join(300)
    failures = [a for a in answers if isinstance(a, str) or a.status not in (200, 429)]
    assert failures == []
    done = [a for a in answers if isinstance(a, Answer) and a.status == 200]
    busy = [a for a in answers if isinstance(a, Answer) and a.status == 429]
    assert len(done) + len(busy) == 100
    assert len(done) >= 20  # 4 running and 16 waiting are always taken
    assert all(a.json()["status"] == "succeeded" and a.json()["finished_at"] for a in done)
    assert all(int(a.headers["Retry-After"]) > 0 for a in busy)
    assert set(healthy) == {200}
    assert live.run_containers() == []


def test_a_client_leaving_a_waiting_run_cancels_it(start_service: Any) -> None:
    live: LiveService = start_service()
    payload = json.dumps({"case": DEMO_CASE, "script": "sleep.py", "args": ["300"]}).encode()
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
        head = (
            "POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {live.token}\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        live.wait_for(lambda: bool(live.run_containers()), "the run's container")
    # The client is gone: the run is cancelled, its container removed, its slot free.
    live.wait_for(lambda: live.run_containers() == [], "the container to be removed")
    live.wait_for(lambda: live.health()["runs_in_flight"] == 0, "the slot to be free")
    (run_id,) = live.saved_run_ids()
    record = live.request("GET", f"/runs/{run_id}").json()
    assert (record["status"], record["exit_code"]) == ("cancelled", 130)
    assert "client" in record["message"]


def test_a_client_leaving_a_follow_stream_leaves_the_run_alone(start_service: Any) -> None:
    live: LiveService = start_service()
    run_id = live.post_run({**NO_WAIT_SLEEP, "args": ["3"]}).json()["id"]
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    connection.request(
        "GET",
        f"/runs/{run_id}/output?follow=true",
        headers={"Authorization": f"Bearer {live.token}"},
    )
    answer = connection.getresponse()
    seen = b""
    while b"\n" not in seen:
        seen += answer.read1()
    assert seen == b"sleeping\n"
    assert metric(live, "roscoe_stream_clients") == 1
    answer.close()
    connection.close()
    live.wait_for(lambda: metric(live, "roscoe_stream_clients") == 0, "the stream let go")
    live.wait_for(
        lambda: live.request("GET", f"/runs/{run_id}").json()["status"] == "succeeded",
        "the run to finish",
    )
    assert live.run_containers() == []


def test_server_stop_cancels_queued_runs_and_interrupts_running_ones(
    engine: Any, runner_env: dict[str, str], unique_name: str, tmp_path: Any
) -> None:
    from service_fixtures import make_workspace

    workspace = make_workspace(tmp_path)
    env = {
        **runner_env,
        "ROSCOE_SERVICE_CONCURRENCY": "1",
        "ROSCOE_SERVICE_QUEUE": "2",
        "ROSCOE_SHUTDOWN_GRACE": "1",
    }
    started = roscoe(
        "server", "start", "--image", RUNNER_IMAGE, "--workspace", str(workspace), env=env
    )
    assert started.returncode == 0, started.stderr.decode()
    port = int(env["ROSCOE_PORT"])
    token = paths.token_file().read_text().strip()
    ids = []
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "POST",
            "/runs",
            json.dumps(NO_WAIT_SLEEP),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        assert answer.status == 202
        ids.append(json.loads(answer.read())["id"])
        connection.close()
    stopped = roscoe("server", "stop", env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr.decode()
    statuses = [json.loads(roscoe("runs", "show", i, "--json").stdout)["status"] for i in ids]
    assert statuses == ["interrupted", "cancelled", "cancelled"]
    leftovers = engine.containers({"io.roscoe.kind": "run"}, all=True)
    assert [c for c in leftovers if any(i in str(c.get("Names")) for i in ids)] == []
    assert engine.inspect_container(unique_name) is None
