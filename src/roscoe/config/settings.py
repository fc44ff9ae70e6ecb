"""The one table of roscoe's settings, and one precedence for all of them.

Every setting a flag, a variable or the config file can set is a row of SETTINGS: its key in
config.toml, its environment variable, its default, its check and its help. Everything else
takes them from here: the run spec's defaults (`RunLimits`), the service's run defaults, the
runner container's environment (runner.layout), the help of the options, `roscoe config`.
The environment variables roscoe reads that are not settings are named below the table.

flag > environment variable > config file (<config dir>/config.toml) > default.
`resolve()` returns the value with where it came from, so `roscoe config show` and
`roscoe version` can say why a value is what it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roscoe.config import parse, paths
from roscoe.errors import UsageError

ENGINES = ("auto", "docker", "podman")
NETWORKS = ("none", "host")  # what a run's network may be
ISOLATIONS = ("runc", "gvisor")  # how a run is isolated (runs.isolation)
LOG_LEVELS = ("debug", "info", "warning", "error")  # the service's (service.log_level)


@dataclass(frozen=True)
class Setting:
    key: str  # as written in config.toml ("run.memory" is [run] memory = ...)
    env: str  # the environment variable that sets it
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
            parse.choice(*ENGINES),
            "container engine family: auto, docker or podman",
        ),
        Setting(
            "image",
            "ROSCOE_RUNNER_IMAGE",
            None,
            parse.text,
            "runner image reference (default: the image pinned to this version)",
        ),
        Setting(
            "workspace",
            "ROSCOE_WORKSPACE",
            None,
            parse.text,
            "workspace root holding projects/ and Tools/ (default: <data dir>/workspace)",
        ),
        Setting(
            "projects_dir",
            "ROSCOE_PROJECTS_DIR",
            "projects",
            parse.folder,
            "folder of cases inside the workspace (one folder name)",
        ),
        Setting(
            "tools_dir",
            "ROSCOE_TOOLS_DIR",
            "Tools",
            parse.folder,
            "folder of scripts inside the workspace (one folder name)",
        ),
        Setting(
            "port", "ROSCOE_PORT", 8765, parse.port, "port of the execution service on 127.0.0.1"
        ),
        Setting(
            "container_name",
            "ROSCOE_CONTAINER_NAME",
            "roscoe-runner",
            parse.container_name,
            "name of the runner container",
        ),
        Setting(
            "run.timeout",
            "ROSCOE_TIMEOUT",
            300,
            parse.positive_float,
            "default timeout of a run, in seconds",
        ),
        Setting(
            "run.memory",
            "ROSCOE_MEMORY",
            "2g",
            parse.size_text,
            "default memory limit of a run (swap is held to the same)",
        ),
        Setting(
            "run.cpus",
            "ROSCOE_CPUS",
            None,
            parse.positive_float,
            "default CPU limit of a run (none: no limit)",
        ),
        Setting(
            "run.network",
            "ROSCOE_NETWORK",
            "none",
            parse.choice(*NETWORKS),
            "default network of a run: none or host",
        ),
        Setting(
            "run.isolation",
            "ROSCOE_ISOLATION",
            "runc",
            parse.choice(*ISOLATIONS),
            "how a run is isolated: runc (the host's kernel, namespaces) or gvisor (gVisor's "
            "user-space kernel)",
        ),
        Setting(
            "run.gvisor_host",
            "ROSCOE_GVISOR_HOST",
            None,
            parse.engine_url,
            "an engine endpoint whose default runtime is gVisor, for gVisor runs (Podman: "
            "its API ignores the runtime a client asks for)",
        ),
        Setting(
            "run.track_changes",
            "ROSCOE_TRACK_CHANGES",
            True,
            parse.boolean,
            "record what each run created, modified and deleted in its case",
        ),
        Setting(
            "run.require_limits",
            "ROSCOE_REQUIRE_LIMITS",
            True,
            parse.boolean,
            "refuse a run whose memory and process limits the engine cannot enforce (rootless "
            "Podman without the cgroup controllers delegated); false runs it without them",
        ),
        Setting(
            "service.concurrency",
            "ROSCOE_SERVICE_CONCURRENCY",
            4,
            parse.positive_int,
            "runs the execution service carries out at once",
        ),
        Setting(
            "service.queue",
            "ROSCOE_SERVICE_QUEUE",
            16,
            parse.positive_int,
            "runs that may wait for a slot before the service answers 429",
        ),
        Setting(
            "service.log_level",
            "ROSCOE_LOG_LEVEL",
            "info",
            parse.choice(*LOG_LEVELS),
            "the service's log level: debug also logs every /health probe",
        ),
        Setting(
            "service.prune",
            "ROSCOE_SERVICE_PRUNE",
            False,
            parse.boolean,
            "the service prunes run folders by runs.older_than/keep/max_size, hourly",
        ),
        Setting(
            "runs.older_than",
            "ROSCOE_RUNS_OLDER_THAN",
            None,
            parse.duration_text,
            "retention: prune runs that ended longer ago than this (e.g. 30d)",
        ),
        Setting(
            "runs.keep",
            "ROSCOE_RUNS_KEEP",
            None,
            parse.count,
            "retention: prune all but this many of the newest finished runs",
        ),
        Setting(
            "runs.max_size",
            "ROSCOE_RUNS_MAX_SIZE",
            None,
            parse.bytes_text,
            "retention: prune the oldest runs until the runs folder is at most this (e.g. 5g)",
        ),
        Setting(
            "runs.warn_size",
            "ROSCOE_RUNS_WARN_SIZE",
            "10g",
            parse.bytes_text,
            "roscoe doctor warns when the runs folder is larger than this",
        ),
    ]
}


def default(key: str) -> Any:
    """The value of setting `key` when nothing sets it."""
    return SETTINGS[key].default


def env_name(key: str) -> str:
    """The environment variable of setting `key`."""
    return SETTINGS[key].env


# Environment variables that are not settings (no config-file key, not in `config show`).
ENV_DATA_DIR = paths.ENV_DATA_DIR  # where roscoe keeps its state
ENV_CONFIG_DIR = paths.ENV_CONFIG_DIR  # where config.toml is
ENV_DEBUG = "ROSCOE_DEBUG"  # tracebacks and every engine call, like --debug
ENV_LOGS_READ_TIMEOUT = "ROSCOE_LOGS_READ_TIMEOUT"  # seconds `logs -f` waits for a byte
ENV_URL = "ROSCOE_URL"  # the agent tool: the execution service's address
ENV_TOKEN = "ROSCOE_TOKEN"  # noqa: S105 - the agent tool: the service's token (a name)
# What `server start` hands the execution service in the runner container (runner.layout),
# besides the settings above:
ENV_HOST_WORKSPACE = "ROSCOE_HOST_WORKSPACE"  # the workspace's path on the host
ENV_HOST_RUNS_DIR = paths.ENV_HOST_RUNS_DIR  # the runs dir's path on the host
ENV_TOKEN_FILE = "ROSCOE_TOKEN_FILE"  # noqa: S105 - where the token file is mounted
ENV_TOKENS_FILE = "ROSCOE_TOKENS_FILE"  # where the scoped-token file is mounted
ENV_HOST_RUNS_DIR = "ROSCOE_HOST_RUNS_DIR"  # the runs dir's path on the host (paths.py)
ENV_PASSTHROUGH = "ROSCOE_PASSTHROUGH_ENV"  # names of the -e variables, for every run
ENV_SHUTDOWN_GRACE = "ROSCOE_SHUTDOWN_GRACE"  # seconds runs may finish after SIGTERM
SHUTDOWN_GRACE_S = 10.0  # the default of ROSCOE_SHUTDOWN_GRACE
LOGS_READ_TIMEOUT_S = 60.0  # the default of ROSCOE_LOGS_READ_TIMEOUT


@dataclass(frozen=True)
class RunLimits:
    """What a run gets when its caller does not say: the run.* settings, resolved."""

    timeout: float = default("run.timeout")
    memory: str = default("run.memory")
    cpus: float | None = default("run.cpus")
    network: str = default("run.network")
    track_changes: bool = default("run.track_changes")
    isolation: str = default("run.isolation")
    gvisor_host: str | None = default("run.gvisor_host")
    require_limits: bool = default("run.require_limits")

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        *,
        timeout: float | None = None,
        memory: str | None = None,
        cpus: float | None = None,
        network: str | None = None,
        track_changes: bool | None = None,
        isolation: str | None = None,
    ) -> RunLimits:
        """Flags (None: not given) > environment > config file > default."""
        return cls(
            timeout=settings.get("run.timeout", timeout),
            memory=settings.get("run.memory", memory),
            cpus=settings.get("run.cpus", cpus),
            network=settings.get("run.network", network),
            track_changes=settings.get("run.track_changes", track_changes),
            isolation=settings.get("run.isolation", isolation),
            gvisor_host=settings.get("run.gvisor_host"),
            require_limits=settings.get("run.require_limits"),
        )


def from_environment(key: str, environ: Mapping[str, str]) -> Any:
    """Setting `key` from `environ` alone (environment > default), checked; UsageError (2).

    For the service in the runner container: the host resolved its settings and handed them
    over in the environment; the host's config file is not there.
    """
    setting = SETTINGS[key]
    if environ.get(setting.env):
        return validate(key, environ[setting.env], setting.env)
    return setting.default


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
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
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
            return Resolved(key, validate(key, flag, "command line"), "flag")
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
