"""What a POST /runs body may say."""

from __future__ import annotations

import json

import pytest

from roscoe.service.validate import (
    MAX_BODY_BYTES,
    Rejected,
    RunRequest,
    check_body_size,
    parse_run_request,
)


def parse(data: object) -> RunRequest:
    return parse_run_request(json.dumps(data).encode())


def test_a_full_request_is_accepted() -> None:
    request = parse(
        {
            "case": "acme",
            "script": "count.py",
            "args": ["-n", "3"],
            "timeout": 30,
            "env": {"X": "1"},
        }
    )
    assert request == RunRequest("acme", "count.py", ("-n", "3"), 30.0, {"X": "1"})


def test_the_minimal_request_gets_defaults() -> None:
    assert parse({"case": "a", "script": "s.py"}) == RunRequest("a", "s.py")
    # Scripts may sit in folders of Tools (mounted read-only as a whole); cases may not.
    assert parse({"case": "a", "script": "sub/s.py"}) == RunRequest("a", "sub/s.py")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"case"', "JSON object"),
        (b'{"case": "a"}', "'script' is required"),
        (b'{"script": "s.py"}', "'case' is required"),
        (b'{"case": "a", "script": "s.py", "image": "evil"}', "unknown field(s): image"),
        (b'{"case": 1, "script": "s.py"}', "'case' must be a string"),
        (b'{"case": "", "script": "s.py"}', "'case' is empty"),
        (b'{"case": "../etc", "script": "s.py"}', "'..'"),
        (b'{"case": "a/../../b", "script": "s.py"}', "'..'"),
        (b'{"case": "a", "script": "..\\\\x.py"}', "'..'"),
        (b'{"case": "/etc", "script": "s.py"}', "absolute path"),
        (b'{"case": "~root", "script": "s.py"}', "absolute path"),
        (b'{"case": "a\\u0000b", "script": "s.py"}', "control characters"),
        (b'{"case": "a/b", "script": "s.py"}', "one folder name"),
        (b'{"case": "a\\\\b", "script": "s.py"}', "one folder name"),
        (b'{"case": ".", "script": "s.py"}', "one folder name"),
        (b'{"case": "-a", "script": "s.py"}', "one folder name"),
        (b'{"case": "a\\u007f", "script": "s.py"}', "control characters"),
        (b'{"case": "a", "script": "s.py", "args": "-n 3"}', "list of strings"),
        (b'{"case": "a", "script": "s.py", "args": [1]}', "list of strings"),
        (b'{"case": "a", "script": "s.py", "timeout": 0}', "'timeout' must be more than 0"),
        (b'{"case": "a", "script": "s.py", "timeout": -5}', "'timeout' must be more than 0"),
        (b'{"case": "a", "script": "s.py", "timeout": 99999}', "at most 3600"),
        (b'{"case": "a", "script": "s.py", "timeout": "10"}', "number of seconds"),
        (b'{"case": "a", "script": "s.py", "timeout": true}', "number of seconds"),
        (b'{"case": "a", "script": "s.py", "env": ["X=1"]}', "'env' must be an object"),
        (b'{"case": "a", "script": "s.py", "env": {"X": 1}}', "must be a string"),
        (b'{"case": "a", "script": "s.py", "env": {"1X": "1"}}', "not a variable name"),
        (b'{"case": "a", "script": "s.py", "env": {"PATH": "/x"}}', "must not set PATH"),
        (b'{"case": "a", "script": "s.py", "env": {"ROSCOE_X": "1"}}', "must not set"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(body: bytes, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_run_request(body)
    assert caught.value.status == 400
    assert words in caught.value.reason
    assert "\n" not in caught.value.reason


def test_body_size_is_checked_before_reading() -> None:
    assert check_body_size("10") == 10
    assert check_body_size(str(MAX_BODY_BYTES)) == MAX_BODY_BYTES
    for value, status in [(str(MAX_BODY_BYTES + 1), 413), (None, 411), ("x", 400), ("-1", 400)]:
        with pytest.raises(Rejected) as caught:
            check_body_size(value)
        assert caught.value.status == status


@pytest.mark.parametrize(
    "name",
    [
        *("LD_AUDIT", "ld_preload", "LD_ANYTHING_NEW", "PYTHONPATH", "PYTHONHOME"),
        *("PYTHONSTARTUP", "DOCKER_HOST", "CONTAINER_HOST", "PATH", "Path"),
        *("GLIBC_TUNABLES", "BASH_ENV"),
    ],
)
def test_the_env_rule_refuses_loader_interpreter_and_engine_variables(name: str) -> None:
    body = json.dumps({"case": "a", "script": "s.py", "env": {name: "x"}}).encode()
    with pytest.raises(Rejected) as caught:
        parse_run_request(body)
    assert caught.value.status == 400
    assert caught.value.reason.startswith(f"'env' must not set {name}: refused: ")


def test_ordinary_variables_pass_the_env_rule() -> None:
    env = {"API_TOKEN": "t", "MODE": "fast", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    body = json.dumps({"case": "a", "script": "s.py", "env": env}).encode()
    assert parse_run_request(body).env == env
