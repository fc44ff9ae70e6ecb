"""The `--json` contract (docs/json.md): which commands take --json, the keys each prints, and
the one shape of an error. A key here is a promise to scripts: renaming or removing one is a
breaking change (CHANGELOG), adding one means adding it here and in docs/json.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from roscoe.cli.app import app, main
from roscoe.config import paths
from roscoe.runs.records import RunRecord, write_record

DOCS = Path(__file__).resolve().parents[2] / "docs" / "json.md"
RECORD_KEYS = {
    "id",
    "case",
    "script",
    "args",
    "image",
    "image_digest",
    "engine",
    "isolation",
    "status",
    "exit_code",
    "started_at",
    "finished_at",
    "duration_s",
    "timed_out",
    "output_file",
    "output_bytes",
    "saved_output_truncated",
    "message",
    "requested_by",
    "script_sha256",
    "env_names",
    "changes",
    "preview",
    "preview_state",
    "applied_at",
    "applied_by",
    "discarded_at",
    "discarded_by",
    "peak_memory_bytes",
    "cpu_user_s",
    "cpu_system_s",
}
ENGINE_KEYS = {"available", "kind", "version", "api_version", "endpoint", "source", "error", "hint"}
# Every command that takes --json, and the keys of what it prints (of each item, for a list).
CONTRACT: dict[str, set[str]] = {
    "config show": {"config_file", "config_file_exists", "settings"},
    "version": {"cli_version", "runner_image", "python", "engine"},
    "doctor": {"ok", "engine", "workspace", "runs", "checks"},
    "run": RECORD_KEYS,
    "runs list": RECORD_KEYS,
    "runs show": RECORD_KEYS,
    "runs apply": RECORD_KEYS,
    "runs discard": RECORD_KEYS,
    "gc": {"dry_run", "removed", "kept", "failed"},
    "runs prune": {
        "dry_run",
        "policy",
        "removed",
        "freed_bytes",
        "kept",
        "kept_running",
        "remaining_bytes",
        "failed",
    },
    "image show": {
        "ref",
        "source",
        "local_only",
        "present",
        "pulled",
        "image_id",
        "digest",
        "repo_digests",
        "version",
        "cli_version",
        "version_match",
        "warnings",
        "engine",
    },
    "server status": {
        "state",
        "name",
        "container_id",
        "short_id",
        "exit_code",
        "image",
        "image_digest",
        "image_version",
        "cli_version",
        "version_match",
        "engine",
        "started_at",
        "uptime_s",
        "health",
        "endpoint",
        "token_file",
        "workspace",
        "runs_in_flight",
        "runs_done",
        "name_taken_by_foreign_container",
    },
    "token list": {"name", "cases", "tools", "can_apply", "created", "expires", "revoked", "state"},
    "token create": {
        "name",
        "cases",
        "tools",
        "can_apply",
        "created",
        "expires",
        "revoked",
        "state",
        "token",
    },
}
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/roscoe-test.sock"}


def json_commands() -> set[str]:
    """Every command of the app whose options include --json."""
    found: set[str] = set()

    def walk(command: Any, path: list[str]) -> None:
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])
        if any("--json" in getattr(p, "opts", []) for p in command.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return found


def roscoe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, Any, str]:
    """main() as the console script runs it: (exit code, the JSON on stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["roscoe", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capsys.readouterr()
    return int(ended.value.code or 0), json.loads(out), err


def test_every_json_command_is_pinned_here_and_documented() -> None:
    assert json_commands() == set(CONTRACT)
    documented = DOCS.read_text(encoding="utf-8")
    for command in CONTRACT:
        assert f"roscoe {command} --json" in documented, command
    assert '{"error": {"message"' in documented


def test_config_show(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, data, _ = roscoe(monkeypatch, capsys, "config", "show", "--json")
    assert code == 0
    assert set(data) == CONTRACT["config show"]


def test_version_and_doctor_without_an_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in NO_ENGINE.items():
        monkeypatch.setenv(name, value)
    code, data, _ = roscoe(monkeypatch, capsys, "version", "--json")
    assert code == 3  # after the report, which says why: one document, not two
    assert set(data) == CONTRACT["version"]
    assert set(data["engine"]) == ENGINE_KEYS
    code, data, _ = roscoe(monkeypatch, capsys, "doctor", "--json")
    assert code == 1
    assert set(data) == CONTRACT["doctor"]
    assert set(data["engine"]) == ENGINE_KEYS
    assert set(data["runs"]) == {"path", "runs", "bytes", "warn_bytes"}
    assert set(data["workspace"]) == {
        "path",
        "source",
        "exists",
        "readable",
        "error",
        "projects_dir",
        "tools_dir",
        "has_projects",
        "has_tools",
        "cases",
        "file_system",
        "engine_uid",
        "engine_can_read",
        "run_user",
        "case_tried",
        "run_user_can_write",
        "write_error",
        "run_user_can_read_tools",
        "tools_error",
    }
    for check in data["checks"]:
        assert set(check) == {"name", "status", "detail", "hint"}
        assert check["status"] in {"ok", "warn", "fail"}


def test_runs_list_and_show(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_record(RunRecord(id="20260101-000000-abcdef12", case="c", script="s.py"))
    code, listed, _ = roscoe(monkeypatch, capsys, "runs", "list", "--json")
    assert code == 0
    assert [set(item) for item in listed] == [CONTRACT["runs list"]]
    code, shown, _ = roscoe(monkeypatch, capsys, "runs", "show", "--json", listed[0]["id"])
    assert code == 0
    assert set(shown) == CONTRACT["runs show"] == CONTRACT["run"]
    assert shown["status"] == "running"


def broken_config() -> None:
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text("port = [\n")


@pytest.mark.parametrize(
    ("args", "env", "exit_code", "says"),
    [
        (["runs", "show", "--json", "nope"], {}, 2, "no run with id 'nope'"),
        (["runs", "show", "--json"], {}, 2, "Missing argument"),
        (["runs", "list", "--json", "--limit", "0"], {}, 2, "--limit"),
        (["runs", "list", "--bogus", "--json"], {}, 2, "No such option: --bogus"),
        (["run", "--json", "--workspace", "{ws}", "case", "s.py"], {}, 2, "case"),
        (["gc", "--json"], NO_ENGINE, 3, "/nonexistent/roscoe-test.sock"),
        (["runs", "prune", "--json"], {}, 2, "no retention to apply"),
        (["server", "status", "--json"], NO_ENGINE, 3, "/nonexistent/roscoe-test.sock"),
        (["image", "show", "--json", "--image", "Bad Ref"], {}, 2, "not an image reference"),
        (["config", "show", "--json"], {"broken": "1"}, 2, "not valid TOML"),
    ],
)
def test_errors_are_one_json_document_on_stdout(  # noqa: PLR0917 - parameters, by name
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    exit_code: int,
    says: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if env.pop("broken", None):
        broken_config()
    (tmp_path / "ws" / "Tools").mkdir(parents=True)
    (tmp_path / "ws" / "projects").mkdir()
    args = [a.replace("{ws}", str(tmp_path / "ws")) for a in args]
    code, data, err = roscoe(monkeypatch, capsys, *args)
    assert code == exit_code
    assert set(data) == {"error"}
    assert set(data["error"]) == {"message", "hint", "exit_code"}
    assert data["error"]["exit_code"] == exit_code
    assert says in data["error"]["message"]
    assert err == ""


def test_without_json_errors_stay_text_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["roscoe", "runs", "show", "nope"])
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capsys.readouterr()
    assert ended.value.code == 2
    assert out == ""
    assert "error: no run with id 'nope'" in err
    assert "hint:" in err


def test_a_script_argument_named_json_is_the_scripts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`roscoe run CASE SCRIPT --json`: --json goes to the script, so errors stay text."""
    monkeypatch.setattr(
        sys, "argv", ["roscoe", "run", "--workspace", str(tmp_path), "case", "s.py", "--json"]
    )
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capsys.readouterr()
    assert ended.value.code == 2
    assert out == ""
    assert "error:" in err


def test_token_create_and_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, made, _ = roscoe(monkeypatch, capsys, "token", "create", "t1", "--case", "a*", "--json")
    assert code == 0
    assert set(made) == CONTRACT["token create"]
    code, listed, _ = roscoe(monkeypatch, capsys, "token", "list", "--json")
    assert code == 0
    assert [set(item) for item in listed] == [CONTRACT["token list"]]
    assert made["token"] not in json.dumps(listed)
