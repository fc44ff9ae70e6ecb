"""Scoped tokens: the rules, the token file, the service's book, and every endpoint through the
ASGI app with the fake run backend (a token for case `a` against runs of case `b`)."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from service_fakes import AUTH, TOKEN, FakeBackend, backend, log_stream, until

from roscoe.access import tokens
from roscoe.access.book import WRONG, TokenBook, Unauthorized
from roscoe.access.principal import ADMIN_PRINCIPAL, Principal
from roscoe.config import paths
from roscoe.errors import UsageError
from roscoe.service.api import ExecutionService
from roscoe.service.app import create_app
from roscoe.service.log import JsonLog
from roscoe.service.scheduler import Scheduler

__all__ = ["backend", "log_stream"]  # fixtures, imported so pytest finds them here


# -- the rules ---------------------------------------------------------------------------------
def test_globs_decide_cases_and_tools() -> None:
    who = Principal("para", cases=("acme-*", "demo"), tools=("reports/*", "count.py"))
    assert who.sees_case("acme-2024") and who.sees_case("demo")
    assert not who.sees_case("other") and not who.sees_case("ACME-1")  # case-sensitive
    assert who.uses_tool("reports/q1/sum.py") and who.uses_tool("count.py")
    assert not who.uses_tool("delete_all.py")
    assert who.run_refusal("acme-1", "count.py") is None
    assert who.run_refusal("other", "count.py") == (
        "token 'para' may not use case 'other' (its cases: acme-*, demo)"
    )
    assert who.run_refusal("demo", "x.sh") == (
        "token 'para' may not run 'x.sh' (its tools: reports/*, count.py)"
    )
    assert who.apply_refusal() is not None
    assert ADMIN_PRINCIPAL.run_refusal("anything", "any.py") is None
    assert ADMIN_PRINCIPAL.apply_refusal() is None


# -- the token file ----------------------------------------------------------------------------
def test_create_stores_a_hash_only_in_a_private_file() -> None:
    made = tokens.create("para", cases=["acme-*"], expires_in=timedelta(days=30))
    assert made.token.startswith("rsc_") and len(made.token) > 40
    where = paths.tokens_file()
    text = where.read_text()
    assert made.token not in text
    assert tokens.token_digest(made.token) in text
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700
    (entry,) = tokens.load()
    assert (entry.name, entry.cases, entry.tools, entry.state()) == (
        "para",
        ["acme-*"],
        ["*"],
        "active",
    )
    assert "sha256" not in entry.public()
    assert not [p.name for p in where.parent.iterdir() if p.name.startswith(".tokens-")]


@pytest.mark.parametrize("name", ["admin", "Admin", "", "-x", "a b", "x" * 65, "é"])
def test_bad_or_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        tokens.create(name)


def test_names_are_never_reused_even_after_revoking() -> None:
    tokens.create("para")
    with pytest.raises(UsageError, match="exists"):
        tokens.create("para")
    entry, changed = tokens.revoke("para")
    assert changed and entry.state() == "revoked"
    assert tokens.revoke("para")[1] is False  # revoked already: nothing to do
    with pytest.raises(UsageError, match="was revoked"):
        tokens.create("PARA")
    with pytest.raises(UsageError, match="no token named 'nobody'"):
        tokens.revoke("nobody")


def test_a_malformed_token_file_is_exit_2() -> None:
    paths.ensure_dir(paths.access_dir())
    paths.tokens_file().write_text("{nope")
    with pytest.raises(UsageError, match="malformed"):
        tokens.load()


# -- the service's book ------------------------------------------------------------------------
@pytest.fixture
def book() -> TokenBook:
    return TokenBook(TOKEN, paths.tokens_file())


def principal(book: TokenBook, token: str) -> Principal:
    return book.principal(f"Bearer {token}")


def test_the_admin_token_is_the_admin(book: TokenBook) -> None:
    assert principal(book, TOKEN) == ADMIN_PRINCIPAL
    assert book.principal(f"bearer {TOKEN}") == ADMIN_PRINCIPAL


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN, "Bearer tök"],
)
def test_anything_else_is_401(book: TokenBook, header: str | None) -> None:
    with pytest.raises(Unauthorized, match=WRONG):
        book.principal(header)


def test_an_empty_admin_token_admits_nobody() -> None:
    with pytest.raises(Unauthorized):
        TokenBook("", None).principal("Bearer ")


def test_new_and_revoked_tokens_count_at_the_next_request(book: TokenBook) -> None:
    with pytest.raises(Unauthorized):
        principal(book, "rsc_" + "x" * 43)
    made = tokens.create("para", cases=["a"], can_apply=True)
    who = principal(book, made.token)  # no restart: the file changed, the book read it
    assert (who.name, who.cases, who.admin, who.can_apply) == ("para", ("a",), False, True)
    tokens.revoke("para")
    with pytest.raises(Unauthorized, match="token 'para' was revoked"):
        principal(book, made.token)


def test_an_expired_token_is_401(book: TokenBook) -> None:
    made = tokens.create("soon", expires_in=timedelta(hours=1))
    data = json.loads(paths.tokens_file().read_text())
    data["tokens"][0]["expires"] = "2020-01-01T00:00:00Z"
    paths.tokens_file().write_text(json.dumps(data))
    with pytest.raises(Unauthorized, match="token 'soon' expired at 2020-01-01"):
        principal(book, made.token)


def test_a_broken_token_file_admits_only_the_admin(book: TokenBook) -> None:
    made = tokens.create("para")
    paths.tokens_file().write_text("[broken")
    with pytest.raises(Unauthorized):
        principal(book, made.token)
    assert book.problem is not None and "unusable" in book.problem
    assert principal(book, TOKEN) == ADMIN_PRINCIPAL


# -- every endpoint, scoped --------------------------------------------------------------------
@pytest.fixture
def scoped(backend: FakeBackend, log_stream: io.StringIO) -> Iterator[tuple[TestClient, str]]:
    """A client, and a token for case `a` and tools `s*.py` only."""
    made = tokens.create("para", cases=["a"], tools=["s*.py"])
    log = JsonLog(log_stream, secrets=[TOKEN])
    service = ExecutionService(
        token=TOKEN,
        scheduler=Scheduler(backend, 2, 4, log),
        health_info={"version": "0.0", "engine": {"kind": "fake", "version": "1"}},
        log=log,
        tokens_file=paths.tokens_file(),
    )
    with TestClient(create_app(service)) as client:
        yield client, made.token


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run(client: TestClient, headers: dict[str, str], case: str, script: str) -> httpx.Response:
    body = json.dumps({"case": case, "script": script}).encode()
    return client.post("/runs", content=body, headers=headers)


def test_a_scoped_token_runs_only_its_cases_and_tools(
    scoped: tuple[TestClient, str], backend: FakeBackend
) -> None:
    client, token = scoped
    answer = run(client, as_(token), "a", "s.py")
    assert answer.status_code == 200, answer.text
    assert backend.runs[-1].requested_by == "para"
    refused = run(client, as_(token), "b", "s.py")
    assert refused.status_code == 403
    assert refused.json() == {"error": "token 'para' may not use case 'b' (its cases: a)"}
    refused = run(client, as_(token), "a", "other.py")
    assert refused.status_code == 403
    assert "may not run 'other.py' (its tools: s*.py)" in refused.json()["error"]
    # Out of scope is 403 before the case is even looked for: nothing to learn about `b`.
    assert run(client, as_(token), "missing", "s.py").status_code == 403
    assert len(backend.runs) == 1


def test_a_scoped_token_sees_only_its_cases_runs(
    scoped: tuple[TestClient, str], backend: FakeBackend
) -> None:
    client, token = scoped
    mine = run(client, as_(token), "a", "s.py").json()["id"]
    theirs = run(client, AUTH, "b", "x.py").json()["id"]
    listed = client.get("/runs", headers=as_(token)).json()["runs"]
    assert [r["id"] for r in listed] == [mine]
    assert {r["id"] for r in client.get("/runs", headers=AUTH).json()["runs"]} == {mine, theirs}
    assert client.get("/runs?case=b", headers=as_(token)).json() == {"runs": []}
    assert [r["id"] for r in client.get("/runs?case=b", headers=AUTH).json()["runs"]] == [theirs]
    for method, path in [
        ("GET", f"/runs/{theirs}"),
        ("GET", f"/runs/{theirs}/output"),
        ("GET", f"/runs/{theirs}/output?follow=true"),
        ("GET", f"/runs/{theirs}/events"),
        ("DELETE", f"/runs/{theirs}"),
    ]:
        answer = client.request(method, path, headers=as_(token))
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json() == {"error": f"no run {theirs}"}  # as if it did not exist
    assert client.get(f"/runs/{mine}", headers=as_(token)).status_code == 200
    assert client.get(f"/runs/{mine}/output", headers=as_(token)).status_code == 200
    assert client.get(f"/runs/{theirs}", headers=AUTH).status_code == 200  # the admin sees all


def test_a_scoped_token_cannot_cancel_another_cases_run(
    scoped: tuple[TestClient, str], backend: FakeBackend
) -> None:
    client, token = scoped
    backend.gate.clear()
    body = json.dumps({"case": "b", "script": "x.py", "wait": False}).encode()
    theirs = client.post("/runs", content=body, headers=AUTH).json()["id"]
    until(backend.started.is_set, "the run to start")
    assert client.delete(f"/runs/{theirs}", headers=as_(token)).status_code == 404
    assert theirs not in backend.cancelled
    assert client.delete(f"/runs/{theirs}", headers=AUTH).status_code in (200, 202)
    backend.gate.set()


def test_discovery_is_scoped_and_metrics_are_the_admins(scoped: tuple[TestClient, str]) -> None:
    client, token = scoped
    assert client.get("/cases", headers=as_(token)).json() == {
        "cases": [{"name": "a", "modified_at": "2026-01-01T00:00:00.000Z"}]
    }
    assert [t["name"] for t in client.get("/tools", headers=as_(token)).json()["tools"]] == ["s.py"]
    assert client.get("/metrics", headers=as_(token)).status_code == 403
    assert client.get("/metrics", headers=AUTH).status_code == 200


def test_a_token_for_other_cases_sees_no_case(
    backend: FakeBackend, log_stream: io.StringIO
) -> None:
    made = tokens.create("elsewhere", cases=["z*"])
    service = ExecutionService(
        token=TOKEN,
        scheduler=Scheduler(backend, 1, 1, JsonLog(log_stream)),
        health_info={},
        log=JsonLog(log_stream),
        tokens_file=paths.tokens_file(),
    )
    with TestClient(create_app(service)) as client:
        assert client.get("/cases", headers=as_(made.token)).json() == {"cases": []}


def test_revoked_and_unknown_tokens_are_401_everywhere(scoped: tuple[TestClient, str]) -> None:
    client, token = scoped
    tokens.revoke("para")
    for method, path in [("GET", "/runs"), ("GET", "/cases"), ("POST", "/runs")]:
        answer = client.request(method, path, headers=as_(token))
        assert answer.status_code == 401
        assert answer.json() == {"error": "token 'para' was revoked at " + tokens.load()[0].revoked}
        assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_the_log_names_the_token_never_shows_it(
    scoped: tuple[TestClient, str], log_stream: io.StringIO
) -> None:
    client, token = scoped
    run(client, as_(token), "a", "s.py")
    run(client, as_(token), "b", "s.py")
    client.get("/runs", headers={"Authorization": f"Bearer {token}x"})
    text = log_stream.getvalue()
    assert token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [line.get("caller") for line in requests] == ["para", "para", None]
    assert any(line["event"] == "run_refused" and line["caller"] == "para" for line in lines)


def test_the_token_file_mount_is_a_folder_handed_to_the_service(tmp_path: Path) -> None:
    from roscoe.runner.layout import CONTAINER_ACCESS_DIR, RunnerConfig, ServiceEnv

    config = RunnerConfig(
        image="img",
        name="n",
        port=8765,
        workspace=tmp_path / "ws",
        runs_dir=tmp_path / "runs",
        token_file=tmp_path / "token",
        engine_socket="/run/engine.sock",
        engine_kind="docker",
        access_dir=tmp_path / "access",
    )
    spec = config.container_spec()
    assert spec.binds[str(tmp_path / "access")] == (CONTAINER_ACCESS_DIR, "ro")
    env = ServiceEnv.from_environ(config.environment())
    assert env.tokens_file == Path(CONTAINER_ACCESS_DIR) / "tokens.json"
    assert os.environ.get("ROSCOE_TOKENS_FILE") is None
