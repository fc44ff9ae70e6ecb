"""The service's RunBackend in production: the one-shot run core, on the mounted engine.

Each run gets its own engine connection (the SDK's client is not meant to be shared between
threads), and the workspace is checked at /workspace while bind mounts name the host's path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from roscoe.config.settings import RunLimits
from roscoe.errors import UsageError
from roscoe.runs.workspace import Workspace
from roscoe.service.live import LiveRun
from roscoe.service.validate import RunRequest

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine
    from roscoe.images.choice import ImageChoice
    from roscoe.runs.isolation import Connect

ADMIN_NAME = "admin"  # the name runs made with the service's own token are recorded under


@dataclass(frozen=True)
class RunDefaults:
    """What a request does not choose: the image and the limits every run gets."""

    image: str
    # A request may ask for another timeout; never for another isolation (run.isolation).
    limits: RunLimits = field(default_factory=RunLimits)
    env: Mapping[str, str] = field(default_factory=dict)  # the server's -e passthrough


class CoreBackend:
    def __init__(
        self,
        connect: Callable[[], RunEngine],
        workspace: Workspace,
        defaults: RunDefaults,
        engine_kind: str | None = None,
        *,
        owner: Mapping[str, str] | None = None,
        connect_url: Connect | None = None,
        choice: ImageChoice | None = None,
    ):
        self._connect = connect
        self._connect_url = connect_url
        self.choice = choice  # where defaults.image came from (runs.start: the pull policy)
        self.workspace = workspace
        self.defaults = defaults
        self.engine_kind = engine_kind
        self.owner = dict(owner or {})  # the runner container's labels for every run

    def new_run_id(self) -> str:
        from roscoe.runs.records import new_run_id

        return new_run_id()

    def check(self, request: RunRequest) -> None:
        self.workspace.case_dir(request.case)
        self.workspace.script_path(request.script)

    def draft_record(self, request: RunRequest, run_id: str, status: str) -> dict[str, Any]:
        from roscoe.runs.outcome import RunStatus
        from roscoe.runs.records import RunRecord, now_iso

        return RunRecord(
            id=run_id,
            case=request.case,
            script=request.script,
            args=list(request.args),
            image=self.defaults.image,
            engine=self.engine_kind,
            isolation=self.defaults.limits.isolation,
            status=RunStatus(status),
            started_at=now_iso(),
            finished_at=None if status in ("queued", "running") else now_iso(),
            requested_by=request.requested_by or ADMIN_NAME,
            env_names=sorted({**self.defaults.env, **request.env}),
            preview=request.preview,
            # A preview cancelled before it started has nothing to keep.
            preview_state="discarded" if request.preview and status == "cancelled" else None,
        ).to_json()

    def run(self, live: LiveRun) -> dict[str, Any]:
        from roscoe.runs.spec import RunSpec
        from roscoe.runs.start import start_run

        request = live.request
        limits = self.defaults.limits
        spec = RunSpec.of(
            request.case,
            request.script,
            list(request.args),
            self.defaults.image,
            limits=replace(limits, timeout=request.timeout or limits.timeout),
            env={**self.defaults.env, **request.env},
            requested_by=request.requested_by or ADMIN_NAME,
            preview=request.preview,
        )
        engine = self._connect()
        try:
            # An absent image is pulled first, as `roscoe run` does (runs.start).
            record = start_run(
                engine,
                self.workspace,
                spec,
                choice=self.choice,
                on_output=live.publish_output,
                cancel=live.cancel,
                run_id=live.id,
                owner=self.owner,
                connect=self._connect_url,
            )
        finally:
            engine.close()
        return record.to_json()

    def apply_preview(self, run_id: str, caller: str) -> dict[str, Any]:
        """Land a preview's changes in its case, in a one-shot container (the runner sees the
        workspace read-only); the record as it now is. UsageError for a run that is not a
        pending preview, Conflict when the case changed where it would write."""
        from roscoe.runs.apply_container import land_in_container
        from roscoe.runs.preview import apply_run

        engine = self._connect()
        try:
            record, _count = apply_run(
                run_id,
                caller,
                land=lambda record, base: land_in_container(
                    engine, self.defaults.image, record, base
                ),
            )
        finally:
            engine.close()
        return record.to_json()

    def discard_preview(self, run_id: str, caller: str) -> dict[str, Any]:
        from roscoe.runs.preview import discard_run

        return discard_run(run_id, caller).to_json()

    def save_record(self, record: dict[str, Any]) -> None:
        from roscoe.runs.records import RunRecord, write_record

        write_record(RunRecord.from_json(record))

    def list_runs(
        self, limit: int, shown: Callable[[str], bool] | None = None
    ) -> list[dict[str, Any]]:
        from roscoe.runs.records import scan_runs

        return [r.to_json() for r in scan_runs(limit, shown=shown).runs]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        from roscoe.runs.records import load_run

        try:
            return load_run(run_id).to_json()
        except UsageError:
            return None

    def read_output(self, run_id: str, tail_bytes: int) -> tuple[bytes, bool] | None:
        """The last `tail_bytes` of a run's output (read from the end, never more), and True
        when that is not all of it; None when there is no such run."""
        from roscoe.runs.records import read_output

        try:
            return read_output(run_id, tail_bytes=tail_bytes)
        except UsageError:
            return None

    def list_cases(self) -> list[dict[str, Any]]:
        from roscoe.runs.catalog import list_cases

        return [case.to_json() for case in list_cases(self.workspace)]

    def list_tools(self) -> list[dict[str, Any]]:
        from roscoe.runs.catalog import list_tools

        return [tool.to_json() for tool in list_tools(self.workspace)]
