"""`-e KEY=VALUE` / `-e KEY` options, read the same way by `roscoe run` and `server start`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from roscoe.errors import UsageError

# A variable name a shell can set: letters, digits and '_', not starting with a digit.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env(items: Iterable[str], host_env: Mapping[str, str]) -> dict[str, str]:
    """-e KEY=VALUE, or -e KEY copied from `host_env` -> {KEY: VALUE}; UsageError (2) for a
    name that is not a variable name, or a KEY that is not set in `host_env`."""
    found: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not ENV_NAME.fullmatch(key):
            raise UsageError(
                f"-e {key or item!r}: not a variable name (letters, digits and _, "
                "not starting with a digit)",
                hint="use -e KEY=VALUE, or -e KEY to pass KEY from your environment",
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
