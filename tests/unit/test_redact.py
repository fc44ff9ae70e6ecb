"""redact(): what the service's log must never show."""

from __future__ import annotations

import json

import pytest

from roscoe.service.log import JsonLog
from roscoe.service.redact import MASK, is_credential_name, redact, redact_fields


def test_known_secret_is_masked_wherever_it_appears() -> None:
    assert redact("token is abcd-1234-efgh here", ["abcd-1234-efgh"]) == f"token is {MASK} here"


def test_short_known_secrets_are_not_searched_literally() -> None:
    assert redact("a cat sat", ["a"]) == "a cat sat"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pass@example.test/repo.git", f"https://{MASK}@example.test/repo.git"),
        ("git+ssh://tok3n@host:22/x", f"git+ssh://{MASK}@host:22/x"),
        (
            "no credentials in https://example.test/a@b",
            "no credentials in https://example.test/a@b",
        ),
    ],
)
def test_credentials_in_urls(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnop",
        '"Authorization": "Basic dXNlcjpwYXNz"',
        "authorization=whatever-it-is",
        "sent Bearer abcdefghijklmnop to the API",
    ],
)
def test_authorization_and_bearer_values(text: str) -> None:
    out = redact(text)
    assert "abcdefghijklmnop" not in out
    assert "dXNlcjpwYXNz" not in out
    assert "whatever-it-is" not in out
    assert MASK in out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("API_TOKEN=s3cr3t-value", "s3cr3t-value"),
        ("--password=hunter22", "hunter22"),
        ('{"aws_secret_access_key": "wJalrXUtnFEMI"}', "wJalrXUtnFEMI"),
        ("GITHUB_TOKEN: ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("url?api_key=XYZ123&x=1", "XYZ123"),
    ],
)
def test_values_of_credential_names(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert MASK in out


def test_well_known_token_shapes_without_a_name() -> None:
    out = redact("pushed with ghp_abcdefghijklmnopqrstuvwxyz0123 and AKIAABCDEFGHIJKLMNOP")
    assert "ghp_" not in out
    assert "AKIA" not in out


def test_harmless_text_is_left_alone() -> None:
    text = "case=acme script=count.py status=200 duration_ms=12.5 path=/runs/x"
    assert redact(text) == text


def test_credential_names() -> None:
    for name in ("API_TOKEN", "db_password", "SECRET", "aws_access_key_id", "Authorization"):
        assert is_credential_name(name), name
    for name in ("CASE", "LANG", "status", "path"):
        assert not is_credential_name(name), name


def test_redact_fields_walks_structures() -> None:
    data = {"env": {"DB_PASSWORD": "pw123456"}, "args": ["--token=abcdef12"], "n": 3}
    assert redact_fields(data) == {
        "env": {"DB_PASSWORD": MASK},
        "args": [f"--token={MASK}"],
        "n": 3,
    }


def test_json_log_lines_are_redacted() -> None:
    log = JsonLog(secrets=["the-service-token-value"])
    line = json.loads(
        log.line(
            "request",
            path="/runs?x=the-service-token-value",
            headers={"Authorization": "Bearer the-service-token-value"},
        )
    )
    assert "the-service-token-value" not in json.dumps(line)
    assert line["event"] == "request"
    assert {"ts", "level", "event"} <= set(line)
