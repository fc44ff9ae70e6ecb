"""What a run is asked to do: the contract between callers (CLI, service) and `execute`."""

from __future__ import annotations

from dataclasses import dataclass, field

from roscoe.config.settings import RunLimits

_DEFAULTS = RunLimits()  # the run.* settings' defaults (config/settings.py)


@dataclass
class RunSpec:
    """One run: `script` from Tools, with `args`, against the case folder `case`.

    `user` is the uid:gid the script runs as; None means the caller's own uid:gid, or
    1000:1000 when the caller is root (a script never runs as root). `requested_by` goes into
    the record as is: `cli:<user name>` from the command line, a token's name through the
    service. `track_changes` false leaves the case unwalked (the record says so).
    `isolation` is "runc" or "gvisor" (runs.isolation); `gvisor_host` an engine endpoint whose
    default runtime is gVisor (the engine's own endpoint is used when None).
    """

    case: str
    script: str
    args: list[str]
    image: str
    timeout: float = _DEFAULTS.timeout
    memory: str = _DEFAULTS.memory
    cpus: float | None = _DEFAULTS.cpus
    network: str = _DEFAULTS.network
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    requested_by: str | None = None
    track_changes: bool = _DEFAULTS.track_changes
    preview: bool = False  # work on a copy of the case; its changes wait for `apply`
    isolation: str = _DEFAULTS.isolation
    gvisor_host: str | None = _DEFAULTS.gvisor_host

    @classmethod
    def of(
        cls,
        case: str,
        script: str,
        args: list[str],
        image: str,
        *,
        limits: RunLimits,
        env: dict[str, str] | None = None,
        requested_by: str | None = None,
        preview: bool = False,
    ) -> RunSpec:
        """A run with the limits resolved for it (RunLimits.resolve)."""
        return cls(
            case=case,
            script=script,
            args=args,
            image=image,
            timeout=limits.timeout,
            memory=limits.memory,
            cpus=limits.cpus,
            network=limits.network,
            env=dict(env or {}),
            requested_by=requested_by,
            track_changes=limits.track_changes,
            preview=preview,
            isolation=limits.isolation,
            gvisor_host=limits.gvisor_host,
        )
