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
from roscoe.errors import ImageError, RoscoeError, UsageError


class NoImageEngine:
    """An engine without the image; records what it was asked."""

    kind = "docker"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def podman_rootless(self) -> bool:
        return False

    def run_create(self, **kwargs: Any) -> str:
        self.calls.append("create")
        raise ImageError("image img:v1 is not present")

    def image_inspect(self, ref: str) -> None:
        self.calls.append("inspect")

    def close(self) -> None:
        pass


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
def engine(monkeypatch: pytest.MonkeyPatch) -> NoImageEngine:
    fake = NoImageEngine()
    monkeypatch.setattr(CliState, "engine", lambda self: fake)
    return fake


def test_ctrl_c_during_the_pull_ends_the_run_before_anything_is_created(
    ws: Path, engine: NoImageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_pull(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("roscoe.images.ensure.ensure_image", interrupted_pull)
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", "case-a", "tool.py")
    assert done.exit_code == 130, done.output
    assert "interrupted while pulling img:v1" in done.output
    assert done.output.count("\n") == 1
    assert engine.calls == ["create", "inspect"]  # the one try before the pull; none after
    assert not paths.runs_dir().exists() or not any(paths.runs_dir().iterdir())


class InterruptedWhileCreating(NoImageEngine):
    """Ctrl-C lands while the container is being created, and then the image is missing."""

    def run_create(self, **kwargs: Any) -> str:
        os.kill(os.getpid(), signal.SIGINT)  # roscoe's handler turns it into a cancel
        return super().run_create(**kwargs)


def test_ctrl_c_while_creating_does_not_go_on_to_pull(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = InterruptedWhileCreating()
    monkeypatch.setattr(CliState, "engine", lambda self: fake)
    pulls: list[Any] = []
    monkeypatch.setattr(
        "roscoe.images.ensure.ensure_image", lambda *args, **kwargs: pulls.append(args)
    )
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", "case-a", "tool.py")
    assert done.exit_code == 130, done.output
    assert "interrupted before pulling img:v1; nothing ran" in done.output
    assert pulls == []
    assert fake.calls == ["create", "inspect"]


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
    ws: Path, engine: NoImageEngine, options: list[str], says: str
) -> None:
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", *options, "case-a", "tool.py")
    assert done.exit_code == 2, done.output
    assert says in done.output
    assert engine.calls == []


@pytest.mark.parametrize("case", ["case-a/sub", "case-a/..", "/etc"])
def test_a_case_that_is_not_one_folder_name_is_exit_2(
    ws: Path, engine: NoImageEngine, case: str
) -> None:
    (ws / "projects" / "case-a" / "sub").mkdir(exist_ok=True)
    done = invoke("run", "--workspace", str(ws), "--image", "img:v1", case, "tool.py")
    assert done.exit_code == 2, done.output
    assert engine.calls == []


@pytest.mark.parametrize(
    "command", [["runs", "list"], ["runs", "show", "20261121-112715-3f9a1c2e"], ["gc"]]
)
def test_an_invalid_config_file_stops_runs_and_gc(
    isolated_dirs: Path, engine: NoImageEngine, command: list[str]
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
    ws: Path, engine: NoImageEngine, name: str
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
