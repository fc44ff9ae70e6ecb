"""A run's shape: everything the caller named, checked, and turned into the container's
command, mounts, user, limits and labels. Nothing here touches the engine."""

from __future__ import annotations

import functools
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from roscoe import __version__
from roscoe.config.parse import env_name_problem, parse_size
from roscoe.config.settings import NETWORKS
from roscoe.errors import UsageError
from roscoe.labels import (
    LABEL_DEADLINE,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_RUN_ID,
    LABEL_STARTED,
    LABEL_VERSION,
    MANAGED_BY_VALUE,
)
from roscoe.runs.host import container_user, selinux_enforcing
from roscoe.runs.records import (
    check_run_id,
    new_run_id,
)
from roscoe.runs.report import HOSTS_FILE, REPORT_MOUNT
from roscoe.runs.spec import RunSpec
from roscoe.runs.workspace import Workspace, interpreter

DATA_MOUNT = "/data"
TOOLS_MOUNT = "/tools"
PIDS_LIMIT = 512
TMPFS = {"/tmp": "rw,nosuid,nodev,mode=1777"}  # noqa: S108 - the container's own /tmp
BASE_ENV = {
    "HOME": "/tmp",  # noqa: S108 - the only writable place besides /data
    "PYTHONUNBUFFERED": "1",  # output shows up live, not when a buffer fills
    "PYTHONDONTWRITEBYTECODE": "1",  # /tools is read-only
}
# If roscoe is SIGKILLed it cannot kill the container at the timeout; the launcher inside the
# container (or coreutils `timeout` in an image without python3) does, this long after. gc may
# sweep a container still running DEADLINE_SLACK_S after that.
BACKSTOP_GRACE_S = 3.0
DEADLINE_SLACK_S = 30
# The container's first process: the launcher (runs/launcher.py) when the image has python3,
# else coreutils `timeout` as before (no figures then). $0 is the launcher's source; $1-$4 its
# report folder, backstop, memory limit and pump flag; $5 is "--"; the rest the command.
ENTRYPOINT = [
    "sh",
    "-c",
    'command -v python3 >/dev/null 2>&1 && exec python3 -I -S -c "$0" "$@"; '
    'backstop=$2; shift 5; exec timeout -s KILL "$backstop" "$@"',
]
# A run without a network gets no /etc/hosts from Docker (engine/runs.py: NetworkDisabled), so
# it gets this one, Docker's own for such a container: `localhost` resolves as it does in any.
HOSTS_MOUNT = "/etc/hosts"
LOCAL_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
MIN_CPUS = 0.01  # the engines refuse less (docker: "Range of CPUs is from 0.01 to ...")


@dataclass(frozen=True)
class RunPlan:
    """A validated spec: host paths, the command line and the limits, ready for the engine."""

    run_id: str
    case_dir: Path
    script_path: Path
    entrypoint: list[str]
    command: list[str]
    binds: list[str]
    env: dict[str, str]
    user: str
    memory_bytes: int
    relabel: str = ""  # ",z" on an SELinux host: bind mounts are relabelled
    hosts: str | None = None  # the container's /etc/hosts, when roscoe gives it one

    def report_binds(self, host_path: Path) -> list[str]:
        """The bind mounts of the launcher's report folder (runs/report.py), and of the
        container's /etc/hosts in it when the run has one."""
        binds = [f"{host_path}:{REPORT_MOUNT}:rw{self.relabel}"]
        if self.hosts is not None:
            binds.append(f"{host_path / HOSTS_FILE}:{HOSTS_MOUNT}:ro{self.relabel}")
        return binds


def plan_run(workspace: Workspace, spec: RunSpec, run_id: str | None = None) -> RunPlan:
    """Check everything the caller named and build the container's shape. UsageError (2)."""
    case_dir = workspace.case_dir(spec.case)
    script = workspace.script_path(spec.script)
    if not spec.timeout or not math.isfinite(spec.timeout) or spec.timeout <= 0:
        raise UsageError(f"the timeout must be a positive number of seconds, not {spec.timeout}")
    try:
        memory_bytes = parse_size(spec.memory)
    except ValueError as exc:
        raise UsageError(f"invalid memory limit: {exc}") from exc
    if spec.cpus is not None and not (math.isfinite(spec.cpus) and spec.cpus >= MIN_CPUS):
        raise UsageError(f"--cpus must be at least {MIN_CPUS:g}, not {spec.cpus:g}")
    if spec.network not in NETWORKS:
        raise UsageError(f"unknown network '{spec.network}'", hint="use none or host")
    for key in spec.env:
        problem = env_name_problem(key)
        if problem:
            raise UsageError(f"the variable '{key[:40]}' cannot be set for a run: {problem}")
    if any("\x00" in arg for arg in spec.args):
        raise UsageError("a script argument contains a NUL byte")

    case_host = workspace.host_path(case_dir)
    tools_host = workspace.host_path(workspace.tools_dir.resolve())
    relabel = ",z" if selinux_enforcing() else ""
    for path in (case_host, tools_host):
        if ":" in str(path):
            raise UsageError(
                f"{path} contains ':', which the engines cannot bind-mount",
                hint="rename the folder, or move the workspace",
            )
    backstop = f"{spec.timeout + BACKSTOP_GRACE_S:g}"
    # Under gVisor a write to the container's output can be cut short, and Python's unbuffered
    # output drops the rest: the launcher passes the output on through pipes of its own.
    pump = "1" if spec.isolation == "gvisor" else "0"
    return RunPlan(
        run_id=check_run_id(run_id) if run_id else new_run_id(),
        case_dir=case_dir,
        script_path=script,
        entrypoint=list(ENTRYPOINT),
        command=[
            launcher_source(),
            REPORT_MOUNT,
            backstop,
            str(memory_bytes),
            pump,
            "--",
            *interpreter(script),
            workspace.in_container(script),
            *spec.args,
        ],
        binds=[f"{case_host}:{DATA_MOUNT}:rw{relabel}", f"{tools_host}:{TOOLS_MOUNT}:ro{relabel}"],
        env={**BASE_ENV, **spec.env},
        user=spec.user or default_user(),
        memory_bytes=memory_bytes,
        relabel=relabel,
        hosts=LOCAL_HOSTS if spec.network == "none" else None,
    )


@functools.cache
def launcher_source() -> str:
    """runs/launcher.py as it goes on the command line: without its module docstring,
    comment lines and blank lines (the engines show a container's command in full)."""
    text = Path(__file__).with_name("launcher.py").read_text(encoding="utf-8")
    body = text.split('"""', 2)[2] if text.startswith('"""') else text
    kept = [
        line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return "\n".join(kept) + "\n"


def check_cpus(cpus: float | None, available: int | None, engine: str) -> None:
    """UsageError (2) when a CPU limit is more than the engine has (Docker refused it at
    create, exit 125; Podman took it): one behaviour on both engines."""
    if cpus is not None and available is not None and cpus > available:
        raise UsageError(
            f"a CPU limit of {cpus:g} is more than the {available} CPUs {engine} has",
            hint=f"use at most {available} (--cpus, run.cpus or ROSCOE_CPUS)",
        )


def default_user() -> str:
    """The caller's uid:gid, or taskrunner's under root (`roscoe.host`): never root inside."""
    uid, gid = container_user()
    return f"{uid}:{gid}"


def run_labels(
    run_id: str, started: float, timeout: float, owner: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The run container's labels. `owner`: the runner container that starts it (its id and
    start time, `runner.container.owner_labels`), which replaces this process's pid and host
    name: from inside a container in host networking those could never say it is gone."""
    deadline = int(started + math.ceil(timeout) + BACKSTOP_GRACE_S + DEADLINE_SLACK_S)
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_KIND: "run",
        LABEL_RUN_ID: run_id,
        LABEL_STARTED: str(int(started)),
        LABEL_DEADLINE: str(deadline),
        LABEL_VERSION: __version__,
    }
    if owner:
        labels.update(owner)
    else:
        labels[LABEL_OWNER_PID] = str(os.getpid())
        labels[LABEL_OWNER_HOST] = socket.gethostname()
    return labels


def container_name(run_id: str) -> str:
    return f"roscoe-run-{run_id}"
