"""Every `roscoe ...` line in the README's code blocks names a real command with real options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from roscoe.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    "README.md",
    "docs/development.md",
    "docs/release.md",
    "docs/json.md",
    "docs/agents.md",
]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
SHELL_BREAK = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "<", "&"}


def command_lines(text: str) -> list[str]:
    """Lines of fenced code blocks that run roscoe (after an optional `$ ` and VAR=value)."""
    found = []
    for block in FENCE.findall(text):
        for raw in block.splitlines():
            line = raw.strip().removeprefix("$ ").strip()
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            while words and ENV_ASSIGNMENT.match(words[0]):
                words.pop(0)
            if words and words[0] == "roscoe":
                found.append(line)
    return found


HELP = type("Help", (), {"is_flag": True})()


def _option(command: Any, word: str) -> Any:
    name = word.split("=", 1)[0]
    if name in ("-h", "--help"):  # click adds the help option outside command.params
        return HELP
    for param in command.params:
        if name in (*param.opts, *param.secondary_opts) and name.startswith("-"):
            return param
    return None


def check(line: str, root: Any) -> list[str]:
    """The problems with one command line: an unknown command, or an option it does not have."""
    words = shlex.split(line, comments=True)
    while ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    words = words[1:]
    command, path, problems = root, ["roscoe"], []
    options_allowed = True
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in SHELL_BREAK:
            break
        if word == "--":
            break
        if word.startswith("-") and options_allowed and len(word) > 1:
            param = _option(command, word)
            if param is None:
                problems.append(f"`{' '.join(path)}` has no option {word.split('=', 1)[0]}")
            elif "=" not in word and not getattr(param, "is_flag", False):
                i += 1  # the option's value
            continue
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            if word not in subcommands:
                problems.append(f"`{' '.join(path)}` has no command {word!r}")
                break
            command = subcommands[word]
            path.append(word)
            continue
        # A positional argument: after it, a command that stops at its arguments (roscoe run)
        # hands the rest to the script.
        if not getattr(command, "allow_interspersed_args", True):
            options_allowed = False
    return problems


def lines_of(document: str) -> list[str]:
    path = ROOT / document
    return command_lines(path.read_text()) if path.exists() else []


def test_the_extractor_finds_and_checks_lines() -> None:
    text = "```\n$ roscoe config show --json | jq .\nROSCOE_PORT=1 roscoe doctor\npipx x\n```\n"
    assert command_lines(text) == [
        "roscoe config show --json | jq .",
        "ROSCOE_PORT=1 roscoe doctor",
    ]
    root = typer.main.get_command(app)
    assert check("roscoe config show --json | jq .", root) == []
    assert check("roscoe --runtime podman doctor --json", root) == []
    assert check("roscoe config shout", root) != []
    assert check("roscoe doctor --jsonn", root) != []
    assert check("roscoe config set --help", root) == []


def test_the_readme_shows_commands() -> None:
    assert lines_of("README.md"), "no `roscoe ...` line found in the README's code blocks"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documented_commands_exist(document: str) -> None:
    root = typer.main.get_command(app)
    problems = [f"{line}: {p}" for line in lines_of(document) for p in check(line, root)]
    assert problems == []
