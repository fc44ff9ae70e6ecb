"""How a run is isolated, and on which engine its container is created.

- runc: the engine's usual runtime. The script runs on the host's kernel, in namespaces,
  with every protection of `runs.plan` (non-root, no capabilities, read-only root, no
  network, limits).
- gvisor: the same container under gVisor's `runsc`, a kernel in user space between the
  script and the host's: a kernel bug the script could reach is gVisor's, not the host's.

Docker runs a container under gVisor when asked (HostConfig.Runtime = "runsc", registered
with dockerd) and refuses a runtime it does not know. Podman's API accepts the same field
and ignores it, so on Podman gVisor is an API service whose default runtime is runsc, named
by run.gvisor_host (or the engine's own, when its default runtime is runsc). Either way the
runtime the container got is read back before it starts (`Placement.verify`): a run asked to
be under gVisor never runs under anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roscoe.engine.errors import GVISOR_RUNTIME, gvisor_hint
from roscoe.errors import EngineError, IsolationError, RoscoeError

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine

RUNC = "runc"
GVISOR = "gvisor"
ISOLATIONS = (RUNC, GVISOR)
GVISOR_HOST_SETTING = "ROSCOE_GVISOR_HOST (run.gvisor_host)"

# Connects to an engine endpoint named by a setting (the factory lives at the edges: the CLI,
# the service), given its URL and the setting's name.
Connect = Callable[[str, str], "RunEngine"]


@dataclass
class Placement:
    """Where a run's container is created and what runtime it must have."""

    engine: RunEngine
    runtime: str | None = None  # asked for at create (HostConfig.Runtime), when the engine heeds it
    expect: str | None = None  # the runtime the container must have before it may start
    owned: bool = False  # `engine` was connected for this run: close it afterwards

    def verify(self, container_id: str) -> None:
        """Before start: the container really has the runtime asked for. If not, it is removed
        and IsolationError (5) raised: nothing ran."""
        if self.expect is None:
            return
        got = self.engine.run_runtime(container_id)
        if got == self.expect:
            return
        with contextlib.suppress(RoscoeError):  # labelled: gc sweeps it; it never started
            self.engine.run_remove(container_id)
        where = self.engine.endpoint
        raise IsolationError(
            f"the {self.engine.kind} engine at {where.url} created the run's container under "
            f"'{got or 'its default runtime'}', not gVisor's {self.expect}: nothing ran",
            hint=gvisor_hint(self.engine.kind),
        )

    def close(self) -> None:
        if self.owned:
            self.engine.close()


def place(
    engine: RunEngine,
    isolation: str,
    gvisor_host: str | None,
    connect: Connect | None = None,
    *,
    thorough: bool = False,
) -> Placement:
    """The engine and runtime for a run of this isolation; IsolationError (5) before any
    container exists when gVisor cannot be had there, with what to do about it.

    A run checks what is cheap and reads the runtime back from its container; `thorough`
    (server start, doctor) also asks gVisor's engine for its default runtime (Podman takes
    up to a second to answer that).
    """
    if isolation == RUNC:
        return Placement(engine)
    if isolation != GVISOR:
        raise IsolationError(
            f"unknown isolation '{isolation}'", hint=f"use one of {', '.join(ISOLATIONS)}"
        )
    target, owned = engine, False
    if gvisor_host:
        target, owned = _connect_gvisor_host(gvisor_host, connect), True
    try:
        return _gvisor_on(target, owned, explicit=bool(gvisor_host), thorough=thorough)
    except BaseException:
        if owned:
            target.close()
        raise


def _connect_gvisor_host(url: str, connect: Connect | None) -> RunEngine:
    if connect is None:  # a caller that cannot reach other engines (a bug, not the user's)
        raise IsolationError(f"gVisor's engine at {url} cannot be reached from here")
    try:
        return connect(url, GVISOR_HOST_SETTING)
    except EngineError as exc:
        raise IsolationError(
            f"gVisor's engine does not answer: {exc.message}",
            hint=exc.hint or gvisor_hint("podman"),
        ) from exc


def _gvisor_on(target: RunEngine, owned: bool, explicit: bool, thorough: bool) -> Placement:
    if target.kind == "docker":
        # Docker heeds HostConfig.Runtime and refuses (400) a runtime it does not know, before
        # any container exists (engine.runs.run_create turns that into IsolationError).
        if thorough and GVISOR_RUNTIME not in target.facts().runtimes:
            raise IsolationError(
                f"docker at {target.endpoint.url} has no runtime '{GVISOR_RUNTIME}': gVisor is "
                "not set up there",
                hint=gvisor_hint("docker"),
            )
        return Placement(target, runtime=GVISOR_RUNTIME, expect=GVISOR_RUNTIME, owned=owned)
    if target.podman_rootless():
        missing = target.facts().missing_controllers(cpus=False)
        if missing:
            raise IsolationError(
                "gVisor cannot run under this rootless Podman: runsc needs the cgroup "
                f"controllers {', '.join(missing)}, which are not delegated to the user",
                hint="use a rootful Podman service for gVisor runs (ROSCOE_GVISOR_HOST), or a "
                "host with cgroup v2 and the controllers delegated "
                "(systemd: Delegate=memory pids cpu in user@.service)",
            )
    if (thorough or not explicit) and target.facts().default_runtime != GVISOR_RUNTIME:
        named = f" ({GVISOR_HOST_SETTING})" if explicit else ""
        raise IsolationError(
            f"gVisor is not set up for Podman at {target.endpoint.url}{named}: its default "
            f"runtime is '{target.facts().default_runtime or 'unknown'}'",
            hint=gvisor_hint("podman"),
        )
    # Podman takes the runtime from the service: nothing to ask for, everything to check.
    return Placement(target, runtime=None, expect=GVISOR_RUNTIME, owned=owned)
