"""The entry point: which commands a command line builds, and how the process ends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from roscoe import __version__
from roscoe.cli.app import COMMANDS, build_app, command_named


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "case", "s.py"], "run"),
        (["--runtime", "docker", "run", "case", "s.py"], "run"),
        (["--runtime=podman", "-q", "gc"], "gc"),
        (["--debug", "runs", "list"], "runs"),
        (["--help"], None),
        (["--", "run"], None),
        ([], None),
    ],
)
def test_the_command_a_command_line_names(args: list[str], named: str | None) -> None:
    assert command_named(args) == named


def commands_of(app: typer.Typer) -> set[str]:
    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_a_named_command_is_built_alone_and_every_command_otherwise() -> None:
    assert commands_of(build_app("run")) == {"run"}
    assert commands_of(build_app()) == set(COMMANDS)


def test_the_version_needs_neither_typer_nor_typing() -> None:
    probe = (
        "import sys\n"
        "from roscoe.cli.app import main\n"
        "sys.argv = ['roscoe', '--version']\n"
        "main()\n"
        "print(sorted({'typer', 'typing', 'click', 'rich'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"roscoe {__version__}", "[]"]


def test_the_console_script_flushes_and_keeps_the_exit_code() -> None:
    """run() leaves the process without Python's teardown: what was printed is all there."""
    probe = (
        "import sys\n"
        "from roscoe.cli.app import run\n"
        "sys.argv = ['roscoe', 'runs', 'show', '--json', 'no-such-run']\n"
        "run()\n"
        "print('never here')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["exit_code"] == 2
    assert "never here" not in done.stdout
