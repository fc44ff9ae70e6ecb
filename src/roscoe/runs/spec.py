"""What a run is asked to do: the contract between callers (CLI, service) and `execute`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunSpec:
    """One run: `script` from Tools, with `args`, against the case folder `case`.

    `user` is the uid:gid the script runs as; None means the caller's own uid:gid, or
    1000:1000 when the caller is root (a script never runs as root). `isolation` is "runc"
    or "gvisor"; `gvisor_host` an engine endpoint whose default runtime is gVisor (the
    engine's own endpoint is used when None).
    """

    case: str
    script: str
    args: list[str]
    image: str
    timeout: float = 300
    memory: str = "2g"
    cpus: float | None = None
    network: str = "none"
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    isolation: str = "runc"
    gvisor_host: str | None = None
