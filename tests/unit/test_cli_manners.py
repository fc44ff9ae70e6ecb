"""Terminal manners: plain text when piped or under NO_COLOR, -q, and shell completion."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import roscoe

ESC = b"\x1b"
# An engine address that answers nothing: the commands fail fast, and in colour on a terminal.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/roscoe-test.sock"}
ROSCOE_SCRIPT = Path(sys.executable).parent / "roscoe"


def run_in_terminal(*args: str, env: dict[str, str]) -> bytes:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return everything it wrote."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    full_env.update({"TERM": "xterm-256color", "COLUMNS": "100"}, **env)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "roscoe", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=full_env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    proc.wait(timeout=60)
    return b"".join(chunks)


@pytest.mark.parametrize("command", [("doctor",), ("version",), ("config", "show")])
def test_piped_output_is_plain_text(command: tuple[str, ...]) -> None:
    result = roscoe(*command, env=NO_ENGINE)
    assert result.stdout or result.stderr
    assert ESC not in result.stdout
    assert ESC not in result.stderr


def test_a_terminal_gets_colour_and_no_color_turns_it_off() -> None:
    coloured = run_in_terminal("doctor", env=NO_ENGINE)
    assert b"engine" in coloured
    assert ESC in coloured  # the control: without it the NO_COLOR check below proves nothing
    plain = run_in_terminal("doctor", env={**NO_ENGINE, "NO_COLOR": "1"})
    assert b"engine" in plain
    assert ESC not in plain


def test_no_color_error_lines_are_plain_on_a_terminal() -> None:
    out = run_in_terminal("version", env={**NO_ENGINE, "NO_COLOR": "1"})
    assert b"error:" in out
    assert ESC not in out


def test_quiet_silences_chatter_but_not_errors() -> None:
    chatty = roscoe("config", "set", "port", "9000")
    assert b"written" in chatty.stderr
    quiet = roscoe("-q", "config", "set", "port", "9001")
    assert quiet.returncode == 0
    assert quiet.stderr == b""
    assert roscoe("config", "get", "port").stdout == b"9001\n"
    failed = roscoe("-q", "config", "set", "port", "http")
    assert failed.returncode == 2
    assert b"error:" in failed.stderr


def completions(shell: str, words: str) -> list[str]:
    """What the installed `roscoe` script offers for `words`, as the shell's script asks it."""
    assert ROSCOE_SCRIPT.exists(), "roscoe is not installed in this venv (make install)"
    env = dict(os.environ, _ROSCOE_COMPLETE=f"complete_{shell}")
    if shell == "bash":
        env.update(COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
    else:
        env.update(_TYPER_COMPLETE_ARGS=words)
        if shell == "fish":
            env.update(_TYPER_COMPLETE_FISH_ACTION="get-args")
    result = subprocess.run(
        [str(ROSCOE_SCRIPT)], env=env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().splitlines()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_offers_subcommands(shell: str) -> None:
    offered = "\n".join(completions(shell, "roscoe config s"))
    assert "show" in offered
    assert "set" in offered
    assert "unset" not in offered  # a real prefix match, not a dump of everything


def test_bash_completes_top_level_commands() -> None:
    assert "config" in completions("bash", "roscoe con")


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete --command roscoe")],
)
def test_show_completion_prints_each_shells_script(shell: str, marker: str) -> None:
    env = dict(os.environ, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    result = subprocess.run(
        [str(ROSCOE_SCRIPT), "--show-completion", shell],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    script = result.stdout.decode()
    assert marker in script
    assert "_ROSCOE_COMPLETE" in script
