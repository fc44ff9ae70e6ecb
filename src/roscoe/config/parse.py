"""Parsers for what users type: settings' values (the checks of the settings table) and `-e`.

Each value parser takes what a flag, a variable or TOML holds and returns the value, or raises
ValueError saying what is wrong; settings.validate() turns that into a UsageError (exit 2)
naming where the value came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from roscoe.errors import UsageError

MAX_SIZE = (1 << 63) - 1  # the engines hold limits in a signed 64-bit integer
MIN_SIZE = 6 << 20  # the engines refuse a memory limit below 6 MiB
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# A variable name a shell can set: letters, digits and '_', not starting with a digit.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


def parse_size(text: str) -> int:
    """A memory limit: parse_bytes(), and at least the 6 MiB the engines need."""
    value = parse_bytes(text)
    if value < MIN_SIZE:
        raise ValueError(f"'{text}' is too small (the engines need at least 6m)")
    return value


def format_bytes(value: int) -> str:
    """1536 -> '1.5 KiB': sizes as people read them (binary units, like parse_bytes)."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration (examples: 30d, 12h, 90m)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def whole(text: Any) -> int:
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


def port(text: Any) -> int:
    value = whole(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port (1-65535)")
    return value


def positive_int(text: Any) -> int:
    value = whole(text)
    if value <= 0:
        raise ValueError(f"{value} must be a positive whole number")
    return value


def positive_float(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a number")
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{value} must be a positive number")
    return value


def choice(*allowed: str) -> Callable[[Any], str]:
    """A parser accepting one of `allowed` (any case; returned in lower case)."""

    def check(text: Any) -> str:
        value = str(text).strip().lower()
        if value not in allowed:
            raise ValueError(f"'{text}' is not one of {', '.join(allowed)}")
        return value

    return check


def boolean(text: Any) -> bool:
    """true/false from TOML, or a word from a flag or a variable (1/0, yes/no, on/off)."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"'{text}' is not true or false")


def size_text(text: Any) -> str:
    """A size as the user wrote it ('2g'), once checked by parse_size."""
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a size (examples: 512m, 2g)")
    parse_size(str(text))
    return str(text).strip()


def bytes_text(text: Any) -> str:
    """A size of any amount as the user wrote it ('5g'), once checked by parse_bytes."""
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a size (examples: 500m, 5g)")
    parse_bytes(str(text))
    return str(text).strip()


def duration_text(text: Any) -> str:
    """A duration as the user wrote it ('30d'), once checked by parse_duration."""
    if isinstance(text, bool):
        raise ValueError(f"{str(text).lower()} is not a duration (examples: 30d, 12h)")
    if parse_duration(str(text)) <= 0:
        raise ValueError(f"'{text}' must be longer than 0")
    return str(text).strip()


def count(text: Any) -> int:
    """A whole number of things, 0 or more."""
    value = whole(text)
    if value < 0:
        raise ValueError(f"{value} must be 0 or more")
    return value


def text(value: Any) -> str:
    # TOML can hold numbers, lists and dates: a path or an image reference must be a string.
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty string")
    return value.strip()


def folder(value: Any) -> str:
    # projects_dir / tools_dir: one folder directly in the workspace, never a path. '/', '..'
    # or an absolute path would let a case or a script name any folder on the host.
    name = text(value)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(
            f"'{name}' is not a plain folder name (one name inside the workspace: "
            "no '/', not '.' or '..')"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"{name!r} contains control characters")
    return name


def engine_url(value: Any) -> str:
    """An engine endpoint: unix:///path/to.sock, tcp://host:port or ssh://user@host."""
    url = text(value)
    if not url.startswith(("unix://", "tcp://", "ssh://")):
        raise ValueError(
            f"'{url}' is not an engine endpoint (unix:///path/to.sock, tcp://host:port, "
            "ssh://user@host)"
        )
    return url


def container_name(value: Any) -> str:
    name = str(value)
    if not _CONTAINER_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    return name


# Variables a run may not set, whatever their case: the one rule of `roscoe run -e`,
# `roscoe server start -e` (forwarded to every run) and the service's `env`. They decide how
# the container finds and loads programs, not what the script is asked to do. Documented in
# docs/usage.md and docs/service-api.md: keep the three in step.
_REFUSED_ENV: dict[str, tuple[str, ...]] = {
    "roscoe sets it (PATH finds the launcher every run starts with)": (
        "PATH",
        "HOME",
        "USER",
        "HOSTNAME",
    ),
    "it changes where an interpreter loads code from, or what it runs first": (
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PYTHONPLATLIBDIR",
        "PYTHONEXECUTABLE",
        "PYTHONBREAKPOINT",
        "PYTHONINSPECT",
        "PERL5LIB",
        "PERLLIB",
        "PERL5OPT",
        "RUBYLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
    ),
    "it changes what the C library loads": ("GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH"),
    "it names a container engine or its credentials": (
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
        "CONTAINER_HOST",
        "CONTAINER_SSHKEY",
        "CONTAINER_CONNECTION",
    ),
}
_REFUSED_PREFIXES = {
    "LD_": "the dynamic loader reads the whole LD_* family (LD_PRELOAD, LD_AUDIT, ...)",
    "ROSCOE_": "ROSCOE_* names are roscoe's own settings",
}
REFUSED_ENV = frozenset(name for names in _REFUSED_ENV.values() for name in names)


def env_name_problem(name: str) -> str | None:
    """Why a run may not set the variable `name`, or None when it may."""
    if not ENV_NAME.fullmatch(name):
        return "not a variable name (letters, digits and _, not starting with a digit)"
    upper = name.upper()
    for prefix, reason in _REFUSED_PREFIXES.items():
        if upper.startswith(prefix):
            return f"refused: {reason}"
    for reason, names in _REFUSED_ENV.items():
        if upper in names:
            return f"refused: {reason}"
    return None


def parse_env(items: Iterable[str], host_env: Mapping[str, str]) -> dict[str, str]:
    """-e KEY=VALUE, or -e KEY copied from `host_env` -> {KEY: VALUE}; UsageError (2) for a
    name that is not a variable name or is refused (`env_name_problem`), or a KEY that is not
    set in `host_env`."""
    found: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not ENV_NAME.fullmatch(key):
            raise UsageError(
                f"-e {key or item!r}: not a variable name (letters, digits and _, "
                "not starting with a digit)",
                hint="use -e KEY=VALUE, or -e KEY to pass KEY from your environment",
            )
        problem = env_name_problem(key)
        if problem:
            raise UsageError(
                f"-e {key}: {problem}",
                hint="pass the value under another name and let the script read that",
            )
        if not eq:
            if key not in host_env:
                raise UsageError(
                    f"-e {key}: {key} is not set in your environment",
                    hint=f"set it, or pass -e {key}=VALUE",
                )
            value = host_env[key]
        found[key] = value
    return found


MAX_EXPIRY_S = 100 * 365 * 86400  # past this no clock can add it to today's date


def parse_expiry(text: str, option: str) -> timedelta:
    """A positive duration (parse_duration) of at most 100 years, as a timedelta; UsageError
    (2) naming `option`."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: not a duration",
            hint="a number and a unit: s, m, h, d or w (e.g. 30d, 12h)",
        ) from None
    if seconds <= 0:
        raise UsageError(f"{option} {text!r} must be longer than 0", hint="e.g. 30d or 12h")
    if seconds > MAX_EXPIRY_S:
        raise UsageError(
            f"{option} {text!r} is longer than 100 years",
            hint=f"leave out {option} for a token that does not expire",
        )
    return timedelta(seconds=seconds)
