"""`-e KEY=VALUE` / `-e KEY` options, read the same way by `roscoe run` and `server start`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from roscoe.errors import UsageError

# A variable name a shell can set: letters, digits and '_', not starting with a digit.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Variables a run may not set, whatever their case: the one rule of `roscoe run -e`,
# `roscoe server start -e` (forwarded to every run) and the service's `env`. They decide how
# the container finds and loads programs, not what the script is asked to do. Documented in
# docs/usage.md and docs/service-api.md: keep the three in step.
_REFUSED_ENV: dict[str, tuple[str, ...]] = {
    "roscoe sets it (PATH finds the `timeout` wrapper every run starts with)": (
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
