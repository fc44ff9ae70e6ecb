"""Every place roscoe keeps state on the host, in one module.

Each function reads the environment when called (not at import), so tests redirect all of
them with monkeypatch.setenv("ROSCOE_DATA_DIR", ...) and nothing touches a user's real dirs.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "roscoe"


def data_dir() -> Path:
    """ROSCOE_DATA_DIR, else the platform's user data dir (honours XDG_DATA_HOME)."""
    override = os.environ.get("ROSCOE_DATA_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """ROSCOE_CONFIG_DIR, else the platform's user config dir (honours XDG_CONFIG_HOME)."""
    override = os.environ.get("ROSCOE_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_file() -> Path:
    return config_dir() / "config.toml"


def runs_dir() -> Path:
    """Run records: one folder per run, shared by the CLI and the execution service."""
    return data_dir() / "runs"


def run_dir(run_id: str) -> Path:
    """One run's record and saved output (run ids are checked by roscoe.runs.records)."""
    return runs_dir() / run_id


def default_workspace() -> Path:
    return data_dir() / "workspace"


def token_file() -> Path:
    """The execution service's bearer token (0600)."""
    return data_dir() / "service-token"


def server_id_file() -> Path:
    """The ID of the runner container roscoe started."""
    return data_dir() / "server" / "container-id"


def server_lock_file() -> Path:
    return data_dir() / "server" / "lock"


def server_settings_file() -> Path:
    """What the last `roscoe server start` was asked for, so `restart` starts the same."""
    return data_dir() / "server" / "settings.json"


def server_env_file() -> Path:
    """The values of the runner's -e variables (0600: they may be secrets)."""
    return data_dir() / "server" / "env.json"


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    """Create a directory (and parents) private to the user; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path
