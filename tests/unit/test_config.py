"""Settings validation, config.toml reading and writing, and `roscoe config` end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import roscoe
from roscoe.config import paths
from roscoe.config.file import effective, set_value, unset_value
from roscoe.config.settings import SETTINGS, Settings, load_config, validate
from roscoe.errors import UsageError
from roscoe.images.version import pinned_image

COMMENTED = """\
# my roscoe settings
engine = "docker"  # the one I use

[run]
# big cases need room
memory = "1g"

[service]
concurrency = 2
"""


def write_config(text: str) -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", True),  # TOML true must not become port 1
        ("port", 2.5),
        ("port", 70000),
        ("port", "http"),
        ("service.concurrency", 0),
        ("service.concurrency", False),
        ("run.timeout", "-1"),
        ("run.timeout", "inf"),
        ("run.timeout", True),
        ("run.memory", "lots"),
        ("run.memory", "1k"),
        ("run.network", "bridge"),
        ("engine", "lxc"),
        ("image", 5),
        ("image", ""),
        ("workspace", ["a"]),
        ("container_name", "-bad"),
    ],
)
def test_invalid_values_are_usage_errors_naming_key_and_what_is_allowed(
    key: str, value: object
) -> None:
    with pytest.raises(UsageError) as caught:
        validate(key, value, "somewhere")
    assert caught.value.exit_code == 2
    assert key in caught.value.message
    assert "somewhere" in caught.value.message
    assert caught.value.hint == SETTINGS[key].help


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("port", "9000", 9000),
        ("port", 9000.0, 9000),
        ("run.timeout", "2.5", 2.5),
        ("run.memory", " 512m ", "512m"),
        ("engine", "Podman", "podman"),
        ("service.queue", 8, 8),
    ],
)
def test_valid_values_convert(key: str, value: object, expected: object) -> None:
    assert validate(key, value, "x") == expected


def test_invalid_file_names_the_file_and_key() -> None:
    path = write_config('[run]\nmemory = "lots"\n')
    with pytest.raises(UsageError) as caught:
        load_config()
    assert str(path) in caught.value.message
    assert "run.memory" in caught.value.message


def test_unknown_key_lists_the_known_ones() -> None:
    write_config("colour = 'red'\n")
    with pytest.raises(UsageError) as caught:
        load_config()
    assert "colour" in caught.value.message
    assert "run.memory" in (caught.value.hint or "")


def test_broken_toml_is_a_usage_error() -> None:
    path = write_config("engine = \n")
    with pytest.raises(UsageError) as caught:
        load_config()
    assert str(path) in caught.value.message


def test_precedence_flag_env_file_default() -> None:
    write_config('engine = "docker"\nport = 9001\n')
    settings = Settings(env={"ROSCOE_RUNTIME": "podman"})
    assert settings.resolve("engine", "auto").source == "flag"
    assert settings.resolve("engine").value == "podman"
    assert settings.resolve("engine").source == "env ROSCOE_RUNTIME"
    assert settings.resolve("port").value == 9001
    assert settings.resolve("port").source == "config file"
    assert settings.resolve("run.memory").source == "default"


# --- writing ----------------------------------------------------------------------------------


def test_set_keeps_comments_and_other_keys() -> None:
    path = write_config(COMMENTED)
    set_value("run.memory", "4g")
    set_value("run.timeout", "60")
    text = path.read_text()
    assert "# my roscoe settings" in text
    assert "# the one I use" in text
    assert "# big cases need room" in text
    assert load_config() == {
        "engine": "docker",
        "run.memory": "4g",
        "run.timeout": 60,
        "service.concurrency": 2,
    }


def test_set_creates_file_and_folder() -> None:
    path = paths.config_file()
    assert not path.parent.exists()
    change = set_value("port", "9100")
    assert change.path == path
    assert load_config() == {"port": 9100}
    assert path.read_text().endswith("\n")


def test_set_writes_the_converted_type() -> None:
    set_value("service.concurrency", "8")
    set_value("run.cpus", "1.5")
    assert load_config() == {"service.concurrency": 8, "run.cpus": 1.5}


def test_invalid_set_leaves_the_file_untouched() -> None:
    path = write_config(COMMENTED)
    for key, value in [("run.memory", "lots"), ("nonsense", "1")]:
        with pytest.raises(UsageError):
            set_value(key, value)
    assert path.read_text() == COMMENTED
    assert os.listdir(path.parent) == ["config.toml"]  # no temp file left behind


def test_set_into_a_broken_file_names_it() -> None:
    path = write_config("engine = \n")
    with pytest.raises(UsageError) as caught:
        set_value("port", "9000")
    assert str(path) in caught.value.message
    assert path.read_text() == "engine = \n"


def test_set_under_a_scalar_is_explained() -> None:
    write_config("run = 3\n")
    with pytest.raises(UsageError) as caught:
        set_value("run.memory", "2g")
    assert "roscoe config unset run" in (caught.value.hint or "")


def test_set_keeps_mode_and_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "roscoe.toml"
    real.parent.mkdir()
    real.write_text(COMMENTED)
    real.chmod(0o600)
    link = paths.config_file()
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    set_value("port", "9200")
    assert link.is_symlink()
    assert "port = 9200" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o600


def test_unset_removes_key_and_emptied_table_keeps_comments() -> None:
    path = write_config(COMMENTED)
    assert unset_value("service.concurrency").changed
    assert unset_value("run.memory").changed
    text = path.read_text()
    assert "[service]" not in text  # emptied: gone
    assert "[run]" in text  # still holds a comment: kept
    assert "# the one I use" in text
    assert load_config() == {"engine": "docker"}


def test_unset_dotted_form_and_absent_key() -> None:
    path = write_config('run.memory = "1g"\nport = 9000\n')
    assert unset_value("run.memory").changed
    assert not unset_value("run.memory").changed
    assert load_config() == {"port": 9000}
    assert "run" not in path.read_text()


def test_unset_can_repair_an_unknown_key_but_refuses_a_typo_not_in_the_file() -> None:
    write_config("colour = 'red'\nport = 9000\n")
    assert unset_value("colour").changed
    assert load_config() == {"port": 9000}
    with pytest.raises(UsageError):
        unset_value("colour")


def test_unset_without_a_file_creates_nothing() -> None:
    assert not unset_value("port").changed
    assert not paths.config_file().exists()


def test_effective_shows_every_setting_with_its_source() -> None:
    write_config("port = 9000\n")
    report = effective(
        Settings(env={"ROSCOE_MEMORY": "3g"}), {"engine": "podman"}, pinned_image=pinned_image()
    )
    by_key = {r.key: r for r in report.values}
    assert list(by_key) == list(SETTINGS)
    assert (by_key["engine"].value, by_key["engine"].source) == ("podman", "flag")
    assert by_key["run.memory"].source == "env ROSCOE_MEMORY"
    assert by_key["port"].source == "config file"
    assert by_key["workspace"].value == str(paths.default_workspace())
    assert (by_key["image"].value, by_key["image"].source) == (pinned_image(), "default")


# --- the command ------------------------------------------------------------------------------


def test_show_json_keys_are_pinned() -> None:
    """The --json contract (docs/json.md): changing these keys is a breaking change."""
    write_config('[run]\nmemory = "4g"\n')
    result = roscoe("--runtime", "docker", "config", "show", "--json", env={"ROSCOE_PORT": "9100"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"config_file", "config_file_exists", "settings"}
    assert data["config_file"] == str(paths.config_file())
    assert data["config_file_exists"] is True
    assert list(data["settings"]) == list(SETTINGS)
    for entry in data["settings"].values():
        assert set(entry) == {"value", "source", "env", "default"}
        assert entry["source"] in {"flag", "env", "config", "default"}
    assert data["settings"]["engine"] == {
        "value": "docker",
        "source": "flag",
        "env": "ROSCOE_RUNTIME",
        "default": "auto",
    }
    assert data["settings"]["port"]["source"] == "env"
    assert data["settings"]["port"]["value"] == 9100
    assert data["settings"]["run.memory"]["source"] == "config"


def test_set_show_unset_round_trip_through_the_cli() -> None:
    assert roscoe("config", "set", "run.memory", "4g").returncode == 0
    shown = roscoe("config", "show")
    assert shown.returncode == 0
    line = next(x for x in shown.stdout.decode().splitlines() if x.startswith("run.memory"))
    assert "4g" in line
    assert "config file" in line
    got = roscoe("config", "get", "run.memory")
    assert got.stdout.decode() == "4g\n"
    assert roscoe("config", "unset", "run.memory").returncode == 0
    assert roscoe("config", "get", "run.memory").stdout.decode() == "2g\n"
    path = roscoe("config", "path")
    assert path.stdout.decode().strip() == str(paths.config_file())


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("config", "set", "run.memory", "lots"), ["run.memory", "not a size"]),
        (("config", "set", "engine", "lxc"), ["engine", "auto, docker, podman"]),
        (("config", "set", "nope", "1"), ["nope", "known settings"]),
        (("config", "get", "nope"), ["nope", "known settings"]),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(
    args: tuple[str, ...], needles: list[str]
) -> None:
    result = roscoe(*args)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err
    assert not paths.config_file().exists()


def test_an_invalid_file_stops_every_command_with_exit_2() -> None:
    path = write_config("port = 'http'\n")
    for args in (("config", "show"), ("config", "get", "port"), ("doctor",)):
        result = roscoe(*args, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
        err = result.stderr.decode()
        assert result.returncode == 2, (args, err)
        assert str(path) in err
        assert "port" in err
        assert "Traceback" not in err


def test_a_relative_workspace_in_the_file_is_relative_to_the_file() -> None:
    path = write_config('workspace = "cases"\n')
    assert Settings().workspace().value == str(path.parent / "cases")
    assert Settings(env={"ROSCOE_WORKSPACE": "/abs"}).workspace().value == "/abs"
