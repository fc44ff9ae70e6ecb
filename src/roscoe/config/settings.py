"""Every setting a flag, a variable or the config file can set, and one precedence for all.

flag > environment variable > config file (<config dir>/config.toml) > default.
`resolve()` returns the value with where it came from, so `roscoe config show` and
`roscoe version` can say why a value is what it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roscoe.config import paths
from roscoe.errors import UsageError

MAX_SIZE = (1 << 63) - 1  # the engines hold limits in a signed 64-bit integer
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

DEFAULT_CONTAINER_NAME = "roscoe-runner"
DEFAULT_PORT = 8765
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_bytes(text: str) -> int:
    """'2g', '512m', '1.5GiB', '1048576' -> bytes (binary units, like docker); any size."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a size (examples: 512m, 2g)")
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
    value = int(number * factor)
    if value > MAX_SIZE:
        raise ValueError(f"'{text}' is larger than any engine takes (at most 8 EiB)")
    return value


def format_bytes(value: int) -> str:
    """1536 -> '1.5 KiB': sizes as people read them (binary units, like parse_bytes)."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str) -> int:
    """A memory limit: parse_bytes(), and at least the 6 MiB the engines need."""
    value = parse_bytes(text)
    if value < 6 << 20:
        raise ValueError(f"'{text}' is too small (the engines need at least 6m)")
    return value


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration (examples: 30d, 12h, 90m)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def _whole(text: Any) -> int:
    """A whole number from a flag, a variable or TOML; refuses true/false and 2.5."""
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a number")
    if isinstance(text, float):
        if not text.is_integer():
            raise ValueError(f"{text} is not a whole number")
        return int(text)
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a whole number") from None


def _port(text: Any) -> int:
    value = _whole(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port (1-65535)")
    return value


def _positive_int(text: Any) -> int:
    value = _whole(text)
    if value <= 0:
        raise ValueError(f"{value} must be a positive whole number")
    return value


def _positive_float(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a number")
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{value} must be a positive number")
    return value


def _count(text: Any) -> int:
    value = _whole(text)
    if value < 0:
        raise ValueError(f"{value} must be 0 or more")
    return value


def _flag(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"'{text}' is not true or false")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(text: Any) -> str:
        value = str(text).strip().lower()
        if value not in allowed:
            raise ValueError(f"'{text}' is not one of {', '.join(allowed)}")
        return value

    return check


def _size_text(text: Any) -> str:
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a size (examples: 512m, 2g)")
    parse_size(str(text))
    return str(text).strip()


def _bytes_text(text: Any) -> str:
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a size (examples: 500m, 5g)")
    parse_bytes(str(text))
    return str(text).strip()


def _duration_text(text: Any) -> str:
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a duration (examples: 30d, 12h)")
    if parse_duration(str(text)) <= 0:
        raise ValueError(f"'{text}' must be longer than 0")
    return str(text).strip()


def _text(text: Any) -> str:
    # TOML can hold numbers, lists and dates: a path or an image reference must be a string.
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a non-empty string")
    return text.strip()


def _folder(text: Any) -> str:
    # projects_dir / tools_dir: one folder directly in the workspace, never a path. '/', '..'
    # or an absolute path would let a case or a script name any folder on the host.
    value = _text(text)
    if "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(
            f"'{value}' is not a plain folder name (one name inside the workspace: "
            "no '/', not '.' or '..')"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} contains control characters")
    return value


def _name(text: Any) -> str:
    value = str(text)
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", value):
        raise ValueError(f"'{value}' is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    return value


@dataclass(frozen=True)
class Setting:
    key: str  # as written in config.toml ("run.memory" is [run] memory = ...)
    env: str | None
    default: Any
    convert: Callable[[Any], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in [
        Setting(
            "engine",
            "ROSCOE_RUNTIME",
            "auto",
            _choice("auto", "docker", "podman"),
            "container engine family: auto, docker or podman",
        ),
        Setting(
            "image",
            "ROSCOE_RUNNER_IMAGE",
            None,
            _text,
            "runner image reference (default: the image pinned to this version)",
        ),
        Setting(
            "workspace",
            "ROSCOE_WORKSPACE",
            None,
            _text,
            "workspace root holding projects/ and Tools/ (default: <data dir>/workspace)",
        ),
        Setting(
            "projects_dir",
            "ROSCOE_PROJECTS_DIR",
            "projects",
            _folder,
            "folder of cases inside the workspace (one folder name)",
        ),
        Setting(
            "tools_dir",
            "ROSCOE_TOOLS_DIR",
            "Tools",
            _folder,
            "folder of scripts inside the workspace (one folder name)",
        ),
        Setting(
            "port", "ROSCOE_PORT", DEFAULT_PORT, _port, "port of the execution service on 127.0.0.1"
        ),
        Setting(
            "container_name",
            "ROSCOE_CONTAINER_NAME",
            DEFAULT_CONTAINER_NAME,
            _name,
            "name of the runner container",
        ),
        Setting(
            "run.timeout",
            "ROSCOE_TIMEOUT",
            300,
            _positive_float,
            "default timeout of a run, in seconds",
        ),
        Setting(
            "run.memory",
            "ROSCOE_MEMORY",
            "2g",
            _size_text,
            "default memory limit of a run (swap is held to the same)",
        ),
        Setting(
            "run.cpus",
            "ROSCOE_CPUS",
            None,
            _positive_float,
            "default CPU limit of a run (none: no limit)",
        ),
        Setting(
            "run.network",
            "ROSCOE_NETWORK",
            "none",
            _choice("none", "host"),
            "default network of a run: none or host",
        ),
        Setting(
            "service.concurrency",
            "ROSCOE_SERVICE_CONCURRENCY",
            4,
            _positive_int,
            "runs the execution service carries out at once",
        ),
        Setting(
            "service.queue",
            "ROSCOE_SERVICE_QUEUE",
            16,
            _positive_int,
            "runs that may wait for a slot before the service answers 429",
        ),
        Setting(
            "service.log_level",
            "ROSCOE_LOG_LEVEL",
            "info",
            _choice(*LOG_LEVELS),
            "the service's log level: debug also logs every /health probe",
        ),
        Setting(
            "service.prune",
            "ROSCOE_SERVICE_PRUNE",
            False,
            _flag,
            "the service prunes run folders by runs.older_than/keep/max_size, hourly",
        ),
        Setting(
            "runs.older_than",
            "ROSCOE_RUNS_OLDER_THAN",
            None,
            _duration_text,
            "retention: prune runs that ended longer ago than this (e.g. 30d)",
        ),
        Setting(
            "runs.keep",
            "ROSCOE_RUNS_KEEP",
            None,
            _count,
            "retention: prune all but this many of the newest finished runs",
        ),
        Setting(
            "runs.max_size",
            "ROSCOE_RUNS_MAX_SIZE",
            None,
            _bytes_text,
            "retention: prune the oldest runs until the runs folder is at most this (e.g. 5g)",
        ),
        Setting(
            "runs.warn_size",
            "ROSCOE_RUNS_WARN_SIZE",
            "10g",
            _bytes_text,
            "roscoe doctor warns when the runs folder is larger than this",
        ),
    ]
}


@dataclass(frozen=True)
class Resolved:
    key: str
    value: Any
    source: str  # "flag", "env ROSCOE_X", "config file", "default"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The config file as a flat {dotted key: value}; {} when absent. Invalid: UsageError (2)."""
    path = path or paths.config_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path} is not valid TOML: {exc}", hint="fix it, or see `roscoe config show`"
        ) from exc
    flat: dict[str, Any] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(f"{dotted}.", value)
            else:
                flat[dotted] = value

    walk("", data)
    for key, value in flat.items():
        if key not in SETTINGS:
            raise UsageError(
                f"{path}: unknown key '{key}'",
                hint=f"known keys: {', '.join(SETTINGS)}",
            )
        validate(key, value, where=str(path))
    return flat


def validate(key: str, value: Any, where: str) -> Any:
    """`value` converted for `key`; else UsageError (2) naming where it came from and what is
    allowed."""
    setting = SETTINGS[key]
    try:
        return setting.convert(value)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}: invalid value for {key}: {exc}", hint=setting.help) from exc


class Settings:
    """Resolves settings for one command invocation; reads the config file at most once."""

    def __init__(self, env: dict[str, str] | None = None, config_path: Path | None = None) -> None:
        self.env = env if env is not None else dict(os.environ)
        self._config_path = config_path
        self._config: dict[str, Any] | None = None

    @property
    def config_path(self) -> Path:
        """The config file these settings read (it may not exist)."""
        return self._config_path or paths.config_file()

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = load_config(self._config_path)
        return self._config

    def resolve(self, key: str, flag: Any = None) -> Resolved:
        setting = SETTINGS[key]
        if flag is not None:
            return Resolved(key, validate(key, flag, "option"), "flag")
        if setting.env and self.env.get(setting.env):
            value = validate(key, self.env[setting.env], setting.env)
            return Resolved(key, value, f"env {setting.env}")
        if key in self.config:
            where = str(self.config_path)
            return Resolved(key, validate(key, self.config[key], where), "config file")
        return Resolved(key, setting.default, "default")

    def get(self, key: str, flag: Any = None) -> Any:
        return self.resolve(key, flag).value

    def check(self) -> None:
        """UsageError (2) for the first invalid setting in the environment or the config file,
        whether or not the command at hand reads it: one rule for every command."""
        for key in SETTINGS:
            self.resolve(key)

    def workspace(self, flag: str | None = None) -> Resolved:
        """The workspace root; the default one under the data dir when nothing names one."""
        found = self.resolve("workspace", flag)
        if found.value is None:
            return Resolved("workspace", str(paths.default_workspace()), "default")
        where = Path(found.value).expanduser()
        if found.source == "config file" and not where.is_absolute():
            # A relative path in the file means the same wherever roscoe is run from.
            where = self.config_path.parent / where
        return Resolved("workspace", str(where), found.source)
