"""Every command's --help ends in examples a user can copy (the other way to learn roscoe)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer.main
from typer.testing import CliRunner

from roscoe.cli.app import app


def command_paths() -> Iterator[tuple[str, ...]]:
    """The root, every group and every command under it, as argument paths."""

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


def test_the_walk_sees_the_commands() -> None:
    found = set(command_paths())
    assert {(), ("doctor",), ("version",), ("config",), ("config", "set")} <= found


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(("roscoe", *p)))
def test_help_has_examples(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Examples" in result.output, f"`roscoe {' '.join(path)} --help` has no Examples block"
    assert f"roscoe {' '.join(path)}".strip() in result.output.split("Examples", 1)[1]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (("run",), "[default: 300; run.timeout; env ROSCOE_TIMEOUT]"),
        (("run",), "[default: 2g; run.memory; env ROSCOE_MEMORY]"),
        (("run",), "[default: on; run.track_changes]"),
        (("run",), "[env: ROSCOE_WORKSPACE]"),
        ((), "[env: ROSCOE_RUNTIME]"),
        (("image", "pull"), "[env: ROSCOE_RUNNER_IMAGE]"),
    ],
)
def test_help_shows_defaults_and_variables_in_brackets(path: tuple[str, ...], shown: str) -> None:
    """Help is read as rich markup, where a bare `[default: ...]` would vanish as a tag."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert shown in result.output
