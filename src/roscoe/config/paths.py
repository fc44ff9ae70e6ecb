"""Every place roscoe keeps state on the host, in one module.

Each function reads the environment when called (not at import), so tests redirect all of
them with monkeypatch.setenv("ROSCOE_DATA_DIR", ...) and nothing touches a user's real dirs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

APP_NAME = "roscoe"
# The two variables that move roscoe's folders (listed with every other one in settings.py).
ENV_DATA_DIR = "ROSCOE_DATA_DIR"
ENV_CONFIG_DIR = "ROSCOE_CONFIG_DIR"
ENV_HOST_RUNS_DIR = "ROSCOE_HOST_RUNS_DIR"  # in the runner container: the runs dir's host path


def data_dir() -> Path:
    """ROSCOE_DATA_DIR, else the platform's user data dir (honours XDG_DATA_HOME)."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """ROSCOE_CONFIG_DIR, else the platform's user config dir (honours XDG_CONFIG_HOME)."""
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_file() -> Path:
    return config_dir() / "config.toml"


def runs_dir() -> Path:
    """Run records: one folder per run, shared by the CLI and the execution service."""
    return data_dir() / "runs"


def host_runs_dir() -> Path:
    """Where the runs dir is on the engine's host, for bind mounts: the same one, unless
    roscoe runs inside the runner container (ROSCOE_HOST_RUNS_DIR, set by the runner)."""
    override = os.environ.get("ROSCOE_HOST_RUNS_DIR")
    return Path(override) if override else runs_dir()


def run_dir(run_id: str) -> Path:
    """One run's record and saved output (run ids are checked by roscoe.runs.records)."""
    return runs_dir() / run_id


def host_view(path: Path) -> Path:
    """Where the engine's host sees `path`, a folder under the runs dir: the same path, unless
    roscoe runs in the runner container, whose ROSCOE_HOST_RUNS_DIR names the runs dir on the
    host (bind mounts name host paths)."""
    on_host = os.environ.get(ENV_HOST_RUNS_DIR)
    if not on_host:
        return path
    return Path(on_host) / Path(path).relative_to(runs_dir())


def default_workspace() -> Path:
    return data_dir() / "workspace"


def token_file() -> Path:
    """The execution service's bearer token (0600)."""
    return data_dir() / "service-token"


def access_dir() -> Path:
    """The scoped tokens' folder; the runner mounts the folder (read-only), so a token file
    replaced by a rename is seen at once inside it (a file mount would keep the old one)."""
    return data_dir() / "access"


def tokens_file() -> Path:
    """Scoped tokens: names, scopes and sha256 hashes, never the tokens (0600)."""
    return access_dir() / "tokens.json"


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


def engine_facts_file() -> Path:
    """What engines said about themselves (rootless, cgroups, runtimes), by socket."""
    return data_dir() / "engine-facts.json"


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    """Create a directory private to the user (0700), and its missing parents; return it.

    mkdir's mode is masked by the umask and never applies to a folder that is already there,
    so the folder (and every folder created here) is chmodded to `mode` afterwards when we
    own it. One owned by someone else is left alone: under a root roscoe the runs dir
    belongs to uid 1000, the service's user. A folder inside the data dir makes sure of the
    data dir first: with the data dir 0700, no other host user reaches anything in it (the
    token, the run records), whoever owns the files themselves.
    """
    path = Path(path)
    root = data_dir()
    if root in path.parents:
        ensure_dir(root, mode)
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=mode)
    if not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    for folder in {path, *missing}:
        _tighten(folder, mode)
    return path


def ensure_data_dir() -> Path:
    """The data dir, created or tightened to 0700."""
    return ensure_dir(data_dir())


def ensure_runs_dir() -> Path:
    """The runs dir (and the data dir above it), created or tightened to 0700 when ours."""
    return ensure_dir(runs_dir())


def _tighten(folder: Path, mode: int) -> None:
    try:
        info = folder.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return
    if info.st_mode & stat.S_ISVTX:  # a shared folder like /tmp named as the data dir: leave it
        return
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(folder, mode)
