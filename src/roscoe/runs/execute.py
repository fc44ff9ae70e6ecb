"""Run one script against one case in a fresh, locked-down container, and record the run.

The order matters: everything the user named is validated before any container exists;
the container is created with every limit, attached to before it starts (so no output is
lost), watched against the deadline and the cancel event, and removed in `finally`.
Output is written to the run's output.log as it arrives and handed to `on_output`; it is
never accumulated in memory, so binary or huge output is just bytes passing through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from roscoe.config import paths
from roscoe.errors import RoscoeError, UsageError
from roscoe.runs.records import (
    RunRecord,
    make_run_dir,
    now_iso,
    run_dir,
    write_record,
)
from roscoe.runs.spec import RunSpec
from roscoe.runs.tracking import Tracker, file_digest
from roscoe.runs.workspace import Workspace

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine

from roscoe.runs.isolation import Connect, Placement, check_limits, place
from roscoe.runs.outcome import RunStatus
from roscoe.runs.output import OnOutput
from roscoe.runs.plan import (
    DATA_MOUNT,
    PIDS_LIMIT,
    TMPFS,
    RunPlan,
    check_cpus,
    container_name,
    plan_run,
    run_labels,
)
from roscoe.runs.report import make_report_dir, remove_report_dir
from roscoe.runs.supervise import Folders, supervise

log = logging.getLogger("roscoe.runs")


def execute(
    engine: RunEngine,
    workspace: Workspace,
    spec: RunSpec,
    *,
    on_output: OnOutput | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
    owner: Mapping[str, str] | None = None,
    connect: Connect | None = None,
) -> RunRecord:
    """Run `spec` and return its record (also written to <data dir>/runs/<id>/run.json).

    Raises before any container exists: UsageError (2) for a bad case, script, id or
    limit (a CPU limit above the engine's CPU count too); ImageError (4) when the image is
    absent; IsolationError (5) when the isolation asked for cannot be had (`runs.isolation`;
    `connect` reaches spec.gvisor_host); EngineError (125) when the container cannot be
    created. A container created under the wrong runtime is removed unstarted
    (IsolationError). Once the container has started, nothing is raised: an engine that
    answers with a failure gives status "error", exit_code 125 and the engine's reason in
    `message`; an engine that stops answering gives status "unknown" (exit_code 125): the
    container may still be running, so it is left for `roscoe gc`, which finishes the record
    from its real end. Setting `cancel` (from any thread) stops the container: status
    "interrupted". Otherwise the container is removed in every case. Never prints, never
    exits, installs no signal handlers; safe to call from many threads at once. `owner`: the
    labels of the runner container that starts the run (the service passes them), instead
    of this process's pid and host name.
    """
    plan = plan_run(workspace, spec, run_id)
    if spec.preview and not spec.track_changes:
        raise UsageError(
            "a preview needs change tracking: its changes are what `apply` lands",
            hint="leave out --no-track-changes (or run.track_changes = false)",
        )
    placement = place(engine, spec.isolation, spec.gvisor_host, connect)
    try:
        target = placement.engine
        rootless = target.podman_rootless()  # its runs need the keep-id user namespace
        unlimited = check_limits(
            target, cpus=spec.cpus is not None, required=spec.require_limits, rootless=rootless
        )
        if spec.cpus is not None:  # only then: Podman takes ~0.3 s to answer /info
            check_cpus(spec.cpus, target.cpu_count(), target.kind)
        return _execute(
            placement,
            workspace,
            spec,
            plan,
            on_output=on_output,
            cancel=cancel,
            owner=owner,
            note=_unlimited_note(unlimited),
            keep_id=rootless,
        )
    finally:
        placement.close()


# What each cgroup controller limits, in a run's words.
_LIMIT_NAMES = {"memory": "memory", "pids": "process", "cpu": "CPU"}


def _unlimited_note(missing: list[str]) -> str | None:
    """What the record says of a run that went without limits (run.require_limits false)."""
    if not missing:
        return None
    names = "/".join(_LIMIT_NAMES.get(c, c) for c in missing)
    return f"the run had no {names} limit: the engine cannot enforce it (run.require_limits)"


def _execute(
    placement: Placement,
    workspace: Workspace,
    spec: RunSpec,
    plan: RunPlan,
    *,
    on_output: OnOutput | None,
    cancel: threading.Event | None,
    owner: Mapping[str, str] | None,
    note: str | None = None,
    keep_id: bool = False,
) -> RunRecord:
    engine = placement.engine
    case_path = str(workspace.host_path(plan.case_dir))
    tracker = Tracker(plan.case_dir, case_path, enabled=spec.track_changes)
    # The run's folder first: the launcher's report folder in it is mounted in the container
    # (and a preview's copy of the case).
    if spec.preview:
        from roscoe.runs import preview  # only here: it loads what applying changes needs

        plan = preview.prepare(plan, tracker)  # the run's folder, the copy at /data
        where = run_dir(plan.run_id)
    else:
        where = make_run_dir(plan.run_id)
        tracker.begin()  # the before-walk goes on while the engine creates the container
    try:
        report_dir = make_report_dir(where, plan.hosts)
        started_wall = time.time()
        started_at = now_iso()
        container_id = _create(
            engine,
            spec,
            plan,
            started_wall,
            owner,
            binds=[*plan.binds, *plan.report_binds(paths.host_view(report_dir))],
            runtime=placement.runtime,
            keep_id=keep_id,
        )
        placement.verify(container_id)  # removes it and raises when it is not under gVisor
        # Hashed once the container exists (it has not started): the before-walk thread has
        # imported hashlib meanwhile, while the engine was creating it.
        script_sha256 = file_digest(plan.script_path)
    except BaseException:
        from roscoe.runs.casecopy import remove_tree

        remove_tree(where)  # nothing ran: no record, no folder (no preview copy either)
        raise
    record = RunRecord(
        id=plan.run_id,
        case=spec.case,
        script=spec.script,
        args=list(spec.args),
        image=spec.image,
        engine=engine.kind,
        isolation=spec.isolation,
        started_at=started_at,
        requested_by=spec.requested_by,
        script_sha256=script_sha256,
        env_names=sorted(spec.env),
        preview=spec.preview,
    )
    tracker.ready()  # the script must not start before the case has been walked
    # Records are fsynced (config.atomic): each write is made while the engine works anyway,
    # the first while it starts the container, the last while it removes it.
    first_record = _Later(write_record, replace(record))
    last_record: _Later | None = None
    try:
        record = supervise(
            engine,
            spec,
            plan,
            container_id,
            record,
            folders=Folders(where, report_dir),
            on_output=on_output,
            cancel=cancel,
        )
        if note:  # said by the record, and so by `roscoe run` and the service's answer
            record.message = f"{record.message}; {note}" if record.message else note
        first_record.wait()
        if record.status not in (RunStatus.ERROR, RunStatus.UNKNOWN):
            # The container has stopped: the case is compared, and the record written, while
            # it is removed.
            tracker.end()
            last_record = _Later(_finish, record, tracker, case_path)
    finally:
        try:
            if record.status != RunStatus.UNKNOWN:
                engine.run_remove(container_id)
            # else: the script may still be running: removing it (should the engine be back
            # this very moment) would kill it. gc removes it once it has ended, and finishes
            # the record from its real end.
        except RoscoeError as exc:
            # gc removes it later (it is labelled); the outcome of the run still stands.
            log.warning("run %s: %s", plan.run_id, exc.message)
        remove_report_dir(report_dir)
    if last_record is None:  # an engine failure: the case is walked once the container is gone
        # (unknown: not walked at all, the script may still be changing it)
        _finish(record, tracker, case_path)
    else:
        last_record.wait()
    return record


def _create(
    engine: RunEngine,
    spec: RunSpec,
    plan: RunPlan,
    started_wall: float,
    owner: Mapping[str, str] | None,
    *,
    binds: list[str],
    runtime: str | None,
    keep_id: bool,
) -> str:
    """Create (not start) the run's container, locked down; its id."""
    return engine.run_create(
        name=container_name(plan.run_id),
        image=spec.image,
        entrypoint=plan.entrypoint,
        command=plan.command,
        user=plan.user,
        workdir=DATA_MOUNT,
        env=plan.env,
        labels=run_labels(plan.run_id, started_wall, spec.timeout, owner),
        binds=binds,
        network=spec.network,
        memory_bytes=plan.memory_bytes,
        cpus=spec.cpus,
        pids_limit=PIDS_LIMIT,
        tmpfs=TMPFS,
        userns="keep-id" if keep_id else None,
        runtime=runtime,
    )


def _finish(record: RunRecord, tracker: Tracker, case_path: str) -> None:
    """The run is over: what it changed, a preview's changes kept or dropped, the record."""
    if record.status == RunStatus.UNKNOWN:  # the script may go on changing the case
        from roscoe.runs import changes

        record.changes = changes.untracked(
            "roscoe lost track of the run while it was under way: its changes are not known"
        )
    else:
        record.changes = tracker.result()
    if record.preview:
        from roscoe.runs import preview

        preview.finish(record, tracker, case_path)
    write_record(record)


class _Later:
    """A call made in a thread of its own, meanwhile; wait() waits for it and raises what it
    raised."""

    def __init__(self, call: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call, *args), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[..., object], *args: object) -> None:
        try:
            call(*args)
        except BaseException as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
