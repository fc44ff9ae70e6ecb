"""Settings: one precedence (flag > env > config file > default) and clear errors."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from helpers import roscoe
from roscoe.config import paths
from roscoe.config.parse import (
    format_bytes,
    parse_bytes,
    parse_duration,
    parse_expiry,
    parse_size,
)
from roscoe.config.settings import Settings
from roscoe.errors import UsageError


def write_config(text: str) -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_precedence_flag_env_file_default() -> None:
    write_config("port = 9001\n[run]\nmemory = '1g'\n")
    settings = Settings(env={"ROSCOE_PORT": "9002"})
    assert settings.resolve("port", 9003).value == 9003
    assert settings.resolve("port", 9003).source == "flag"
    assert (settings.resolve("port").value, settings.resolve("port").source) == (
        9002,
        "env ROSCOE_PORT",
    )
    assert settings.resolve("run.memory").source == "config file"
    assert settings.resolve("run.timeout").source == "default"


def test_invalid_file_names_file_and_is_exit_2() -> None:
    path = write_config("port = [\n")
    with pytest.raises(UsageError) as caught:
        Settings(env={}).get("port")
    assert str(path) in caught.value.message
    assert caught.value.exit_code == 2


def test_unknown_key_and_bad_value_say_what_is_allowed() -> None:
    write_config("colour = 'red'\n")
    with pytest.raises(UsageError, match="unknown key 'colour'"):
        Settings(env={}).get("port")
    write_config("[run]\nnetwork = 'bridge'\n")
    with pytest.raises(UsageError) as caught:
        Settings(env={}).get("run.network")
    assert "run.network" in caught.value.message
    assert "none, host" in caught.value.message


def test_bad_env_value_is_usage_error() -> None:
    with pytest.raises(UsageError, match="ROSCOE_PORT"):
        Settings(env={"ROSCOE_PORT": "99999"}).get("port")


def test_workspace_defaults_under_data_dir(isolated_dirs: Path) -> None:
    found = Settings(env={}).workspace()
    assert found.value == str(isolated_dirs / "workspace")
    assert Settings(env={"ROSCOE_WORKSPACE": "/srv/ws"}).workspace().value == "/srv/ws"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2g", 2 << 30),
        ("512m", 512 << 20),
        ("1.5GiB", int(1.5 * (1 << 30))),
        ("67108864", 64 << 20),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1g", "1k", "99999999999999999999999g"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1k", 1024), ("5g", 5 << 30), ("1.5m", 3 << 19), ("10 GiB", 10 << 30)],
)
def test_parse_bytes_takes_any_size(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("value", "shown"), [(0, "0 B"), (1536, "1.5 KiB"), (5 << 30, "5.0 GiB")])
def test_format_bytes(value: int, shown: str) -> None:
    assert format_bytes(value) == shown


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "3x", "d", "-1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("soon", "--expires 'soon': not a duration"),
        ("0d", "--expires '0d' must be longer than 0"),
        ("99999999999w", "--expires '99999999999w' is longer than 100 years"),
        ("600000w", "--expires '600000w' is longer than 100 years"),
    ],
)
def test_parse_expiry_refuses_with_a_hint(text: str, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_expiry(text, "--expires")
    assert (caught.value.message, caught.value.exit_code) == (said, 2)
    assert caught.value.hint


def test_parse_expiry() -> None:
    assert parse_expiry("30d", "--expires") == timedelta(days=30)


def test_retention_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="ROSCOE_RUNS_KEEP"):
        Settings(env={"ROSCOE_RUNS_KEEP": "-3"}).get("runs.keep")
    with pytest.raises(UsageError, match="must be longer than 0"):
        Settings(env={"ROSCOE_RUNS_OLDER_THAN": "0h"}).get("runs.older_than")
    assert Settings(env={"ROSCOE_SERVICE_PRUNE": "yes"}).get("service.prune") is True
    assert Settings(env={}).get("runs.warn_size") == "10g"
    with pytest.raises(UsageError, match="not one of debug, info, warning, error"):
        Settings(env={"ROSCOE_LOG_LEVEL": "loud"}).get("service.log_level")


def test_paths_follow_environment(isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.data_dir() == isolated_dirs
    monkeypatch.delenv("ROSCOE_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(isolated_dirs / "xdg"))
    assert paths.data_dir() == isolated_dirs / "xdg" / "roscoe"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_dir_creates_and_tightens_the_data_dir(isolated_dirs: Path) -> None:
    old = os.umask(0)  # mkdir's mode alone would give 0777 parents here
    try:
        runs = paths.ensure_runs_dir()
    finally:
        os.umask(old)
    assert (_mode(isolated_dirs), _mode(runs)) == (0o700, 0o700)
    isolated_dirs.chmod(0o755)  # made by an older roscoe, or by hand
    runs.chmod(0o755)
    paths.ensure_dir(paths.data_dir() / "server")
    assert (_mode(isolated_dirs), _mode(isolated_dirs / "server")) == (0o700, 0o700)
    paths.ensure_runs_dir()
    assert _mode(runs) == 0o700


def test_ensure_dir_leaves_folders_of_others_and_shared_ones_alone(
    isolated_dirs: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    paths.ensure_dir(shared)
    assert _mode(shared) == 0o1777
    if os.getuid() != 0:
        return
    # Under a root roscoe the runs dir belongs to the service's uid 1000: keep it so.
    runs = paths.ensure_runs_dir()
    os.chown(runs, 1000, 1000)
    runs.chmod(0o750)
    paths.ensure_runs_dir()
    assert (_mode(runs), runs.stat().st_uid) == (0o750, 1000)


def test_every_run_default_is_the_tables() -> None:
    """One source of truth: the run spec, the service and the runner take the table's."""
    from roscoe.config.settings import SETTINGS, RunLimits
    from roscoe.runner.layout import RunnerConfig
    from roscoe.runs.spec import RunSpec
    from roscoe.service.backend import RunDefaults

    spec = RunSpec(case="c", script="s.py", args=[], image="i")
    limits = (spec.timeout, spec.memory, spec.cpus, spec.network)
    table = tuple(SETTINGS[f"run.{k}"].default for k in ("timeout", "memory", "cpus", "network"))
    assert limits == table
    assert RunDefaults(image="i").limits == RunLimits(*table)
    runner = RunnerConfig(
        image="i",
        name="n",
        port=SETTINGS["port"].default,
        workspace=Path("/w"),
        runs_dir=Path("/r"),
        token_file=Path("/t"),
        engine_socket="/s",
        engine_kind="docker",
    )
    shape = (runner.concurrency, runner.queue, runner.projects_dir, runner.tools_dir)
    keys = ("service.concurrency", "service.queue", "projects_dir", "tools_dir")
    assert shape == tuple(SETTINGS[k].default for k in keys)


def test_the_service_reads_settings_by_the_tables_names_and_checks_them() -> None:
    from roscoe.runner.layout import ServiceEnv

    found = ServiceEnv.from_environ({})
    assert (found.port, found.concurrency, found.queue) == (8765, 4, 16)
    assert (found.projects_dir, found.tools_dir) == ("projects", "Tools")
    assert ServiceEnv.from_environ({"ROSCOE_SERVICE_QUEUE": "3"}).queue == 3
    with pytest.raises(UsageError, match="ROSCOE_PORT"):
        ServiceEnv.from_environ({"ROSCOE_PORT": "99999"})
    with pytest.raises(UsageError, match="ROSCOE_TOOLS_DIR"):
        ServiceEnv.from_environ({"ROSCOE_TOOLS_DIR": "../etc"})


def test_run_limits_resolve_flag_over_environment_over_default() -> None:
    from roscoe.config.settings import RunLimits

    settings = Settings(env={"ROSCOE_MEMORY": "1g", "ROSCOE_NETWORK": "host"})
    limits = RunLimits.resolve(settings, memory="512m")
    assert (limits.timeout, limits.memory, limits.cpus, limits.network) == (
        300,
        "512m",
        None,
        "host",
    )


def test_defaults_and_variable_names_are_written_once() -> None:
    """The port, and every ROSCOE_ variable, appear as literals only in config/ (the table
    and the two folder variables) - and in engine/detect.py, which picks the engine family."""
    import re

    import roscoe

    src = Path(roscoe.__file__).parent
    allowed = {"config/settings.py", "config/paths.py", "engine/detect.py"}
    for path in sorted(src.rglob("*.py")):
        name = path.relative_to(src).as_posix()
        if name in allowed:
            continue
        text = path.read_text(encoding="utf-8")
        assert "8765" not in text, name
        assert not re.findall(r"[\"']ROSCOE_[A-Z_]+[\"']", text), name


# Every command but `config` (which is how one repairs a setting) and the shell's completion.
COMMANDS = [
    ["runs", "list"],
    ["runs", "show", "20261121-112715-3f9a1c2e"],
    ["gc", "--dry-run"],
    ["version"],
    ["doctor"],
    ["logs"],
    ["image", "show"],
    ["server", "status"],
    ["server", "stop"],
    ["run", "case-a", "tool.py"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_invalid_variable_stops_every_command_with_exit_2(
    command: list[str], tmp_path: Path
) -> None:
    # No engine is needed to be refused: the setting is checked before anything is touched.
    env = {"ROSCOE_MEMORY": "abc", "DOCKER_HOST": f"unix://{tmp_path}/absent.sock"}
    done = roscoe(*command, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert b"ROSCOE_MEMORY: invalid value for run.memory: 'abc' is not a size" in done.stderr


def test_the_config_commands_still_work_to_repair_a_bad_file() -> None:
    write_config("[run]\nmemory = 'lots'\n")
    assert roscoe("config", "show").returncode == 2
    assert roscoe("config", "path").returncode == 0
    fixed = roscoe("config", "unset", "run.memory")
    assert fixed.returncode == 0, fixed.stderr
    assert roscoe("runs", "list").returncode == 0


def test_help_works_whatever_the_settings() -> None:
    done = roscoe("runs", "list", "--help", env={"ROSCOE_MEMORY": "abc"})
    assert done.returncode == 0 and b"List recent runs" in done.stdout
