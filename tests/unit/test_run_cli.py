"""`roscoe run` / `runs` / `gc` in-process with a fake engine: what happens before a container."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from roscoe.cli.app import app
from roscoe.cli.context import CliState
from roscoe.config import paths
from roscoe.config.parse import parse_env
from roscoe.engine.fake import FakeEngine
from roscoe.errors import RoscoeError, UsageError


@pytest.fixture
def ws(tmp_path: Path, isolated_dirs: Path) -> Path:
    root = tmp_path / "ws"
    (root / "projects" / "case-a").mkdir(parents=True)
    (root / "Tools").mkdir()
    (root / "Tools" / "tool.py").write_text("print('hi')\n")
    return root


class Done:
    """How an in-process invocation ended, as `main()` would report it."""

    def __init__(self, result: Any) -> None:
        self.exit_code = result.exit_code
        self.output = result.output
        if isinstance(result.exception, RoscoeError):  # main() prints these, exit code theirs
            self.exit_code = int(result.exception.exit_code)
            self.output += f"error: {result.exception.message}\n"


def invoke(*args: str) -> Done:
    return Done(CliRunner().invoke(app, list(args), env={"NO_COLOR": "1"}))


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """An engine without the image; records what it was asked."""
    fake = FakeEngine()
    monkeypatch.setattr(CliState, "engine", lambda self: fake)
    return fake


def test_ctrl_c_during_the_pull_ends_the_run_before_anything_is_created(
    ws: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_pull(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("roscoe.images.ensure.ensure_image", interrupted_pull)
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", "case-a", "tool.py")
    assert done.exit_code == 130, done.output
    assert "interrupted while pulling img:v1" in done.output
    assert done.output.count("\n") == 1
    # The one try before the pull; none after.
    assert engine.methods() == ["podman_rootless", "run_create", "image_inspect"]
    assert not paths.runs_dir().exists() or not any(paths.runs_dir().iterdir())


def test_ctrl_c_while_creating_does_not_go_on_to_pull(
    ws: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C lands while the container is being created, and then the image is missing."""
    create = engine.run_create

    def interrupted_create(**kwargs: Any) -> str:
        os.kill(os.getpid(), signal.SIGINT)  # roscoe's handler turns it into a cancel
        return create(**kwargs)

    monkeypatch.setattr(engine, "run_create", interrupted_create)
    pulls: list[Any] = []
    monkeypatch.setattr(
        "roscoe.images.ensure.ensure_image", lambda *args, **kwargs: pulls.append(args)
    )
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", "case-a", "tool.py")
    assert done.exit_code == 130, done.output
    assert "interrupted before pulling img:v1; nothing ran" in done.output
    assert pulls == []
    assert engine.methods() == ["podman_rootless", "run_create", "image_inspect"]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--cpus", "0.0001"], "--cpus must be at least 0.01"),
        (["--image", "Bad Ref!!"], "not an image reference"),
        (["--image", ""], "not an image reference"),
        (["-e", "A B=1"], "not a variable name"),
        (["-e", "1A=2"], "not a variable name"),
        (["-e", "SURELY_UNSET_VAR_FOR_A_TEST"], "is not set in your environment"),
    ],
)
def test_bad_options_are_exit_2_before_any_engine_call(
    ws: Path, engine: FakeEngine, options: list[str], says: str
) -> None:
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", *options, "case-a", "tool.py")
    assert done.exit_code == 2, done.output
    assert says in done.output
    assert engine.calls == []


@pytest.mark.parametrize("case", ["case-a/sub", "case-a/..", "/etc"])
def test_a_case_that_is_not_one_folder_name_is_exit_2(
    ws: Path, engine: FakeEngine, case: str
) -> None:
    (ws / "projects" / "case-a" / "sub").mkdir(exist_ok=True)
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", case, "tool.py")
    assert done.exit_code == 2, done.output
    assert engine.calls == []


@pytest.mark.parametrize(
    "command", [["runs", "list"], ["runs", "show", "20261121-112715-3f9a1c2e"], ["gc"]]
)
def test_an_invalid_config_file_stops_runs_and_gc(
    isolated_dirs: Path, engine: FakeEngine, command: list[str]
) -> None:
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text("this is [ not toml\n")
    done = invoke("--runtime", "docker", *command)
    assert done.exit_code == 2, done.output
    assert "not valid TOML" in done.output


def test_parse_env_one_rule_for_every_command() -> None:
    assert parse_env(["A=1", "B", "C=", "_x9=a=b"], {"B": "two"}) == {
        "A": "1",
        "B": "two",
        "C": "",
        "_x9": "a=b",
    }
    for bad in ("A B=1", "1A=2", "=x", "", "É=1", "A-B=1"):
        with pytest.raises(UsageError, match="not a variable name") as caught:
            parse_env([bad], {})
        assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="not set"):
        parse_env(["MISSING"], {})


@pytest.mark.parametrize("name", ["PATH", "LD_AUDIT", "PYTHONPATH", "DOCKER_HOST", "ROSCOE_X"])
def test_run_and_server_start_refuse_what_the_service_refuses(
    ws: Path, engine: FakeEngine, name: str
) -> None:
    # One rule in one place (config.parse.env_name_problem): -e PATH=/x broke roscoe's own
    # `timeout` wrapper (exit 125); the service already refused it.
    run = ["run", "--workspace", str(ws), "--image", "img:v1", "-e", f"{name}=/x", "case-a", "x.py"]
    start = ["server", "start", "-e", f"{name}=/x"]
    for command in (run, start):
        done = invoke(*command)
        assert done.exit_code == 2, done.output
        assert f"-e {name}: refused: " in done.output
    assert engine.calls == []


def _saved(run_id: str, case: str, changes: dict[str, Any] | None) -> None:
    from roscoe.runs.records import RunRecord, write_record

    write_record(
        RunRecord(
            id=run_id,
            case=case,
            script="tool.py",
            status="succeeded",
            exit_code=0,
            started_at=f"2026-01-01T00:00:0{run_id[-1]}.000Z",
            requested_by="cli:someone",
            changes=changes,
        )
    )


def test_runs_list_filters_by_case(isolated_dirs: Path) -> None:
    _saved("20260101-000000-aaaaaaa1", "case-a", None)
    _saved("20260101-000000-aaaaaaa2", "case-b", None)
    shown = invoke("runs", "list", "--case", "case-b", "--json")
    assert shown.exit_code == 0
    import json

    assert [r["id"] for r in json.loads(shown.output)] == ["20260101-000000-aaaaaaa2"]
    assert "no runs of case 'case-c'" in invoke("runs", "list", "--case", "case-c").output


def test_runs_show_lists_the_changes(isolated_dirs: Path) -> None:
    changes = {
        "tracked": True,
        "created": [
            {"path": "out", "type": "dir", "size": None, "sha256": None, "mode": "0755"},
            {"path": "out/r.txt", "type": "file", "size": 2048, "sha256": "ab", "mode": "0644"},
        ],
        "modified": [
            {
                "path": "a.txt",
                "type": "file",
                "size": 8,
                "sha256": "cd",
                "mode": "0600",
                "size_before": 6,
                "sha256_before": "ef",
                "mode_before": "0644",
            }
        ],
        "deleted": [
            {"path": "gone.txt", "type": "file", "size": 4, "sha256": "01", "mode": "0644"}
        ],
    }
    _saved("20260101-000000-aaaaaaa1", "case-a", changes)
    shown = invoke("runs", "show", "20260101-000000-aaaaaaa1")
    assert shown.exit_code == 0
    assert "+ out/ (folder)" in shown.output
    assert "+ out/r.txt (2.0 KiB)" in shown.output
    assert "~ a.txt (6 B -> 8 B, mode 0644 -> 0600)" in shown.output
    assert "- gone.txt (4 B)" in shown.output
    assert "cli:someone" in shown.output


def test_runs_show_says_when_changes_were_not_tracked(isolated_dirs: Path) -> None:
    _saved("20260101-000000-aaaaaaa1", "case-a", {"tracked": False, "reason": "turned off"})
    nothing = {"tracked": True, "created": [], "modified": [], "deleted": []}
    _saved("20260101-000000-aaaaaaa2", "case-a", nothing)
    assert "not tracked: turned off" in invoke("runs", "show", "20260101-000000-aaaaaaa1").output
    assert "changed nothing" in invoke("runs", "show", "20260101-000000-aaaaaaa2").output
