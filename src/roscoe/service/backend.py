"""The service's RunBackend in production: the one-shot run core, on the mounted engine.

Each run gets its own engine connection (the SDK's client is not meant to be shared between
threads), and the workspace is checked at /workspace while bind mounts name the host's path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe.errors import UsageError
from roscoe.runs.workspace import Workspace
from roscoe.service.validate import RunRequest

if TYPE_CHECKING:
    from roscoe.engine import Engine
    from roscoe.runs.isolation import Connect

OUTPUT_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunDefaults:
    """What a request does not choose: the image and the limits every run gets."""

    image: str
    timeout: float = 300
    memory: str = "2g"
    cpus: float | None = None
    network: str = "none"
    env: Mapping[str, str] = field(default_factory=dict)  # the server's -e passthrough
    isolation: str = "runc"  # the host's run.isolation: a request has no say in it
    gvisor_host: str | None = None


class CoreBackend:
    def __init__(
        self,
        connect: Callable[[], Engine],
        workspace: Workspace,
        defaults: RunDefaults,
        connect_url: Connect | None = None,
    ):
        self._connect = connect
        self._connect_url = connect_url
        self.workspace = workspace
        self.defaults = defaults

    def new_run_id(self) -> str:
        from roscoe.runs.records import new_run_id

        return new_run_id()

    def check(self, request: RunRequest) -> None:
        self.workspace.case_dir(request.case)
        self.workspace.script_path(request.script)

    def run(self, request: RunRequest, run_id: str, cancel: threading.Event) -> dict[str, Any]:
        from roscoe.runs.execute import execute
        from roscoe.runs.records import read_output
        from roscoe.runs.spec import RunSpec

        spec = RunSpec(
            case=request.case,
            script=request.script,
            args=list(request.args),
            image=self.defaults.image,
            timeout=request.timeout or self.defaults.timeout,
            memory=self.defaults.memory,
            cpus=self.defaults.cpus,
            network=self.defaults.network,
            env={**self.defaults.env, **request.env},
            isolation=self.defaults.isolation,
            gvisor_host=self.defaults.gvisor_host,
        )
        engine = self._connect()
        try:
            record = execute(
                engine,
                self.workspace,
                spec,
                cancel=cancel,
                run_id=run_id,
                connect=self._connect_url,
            )
        finally:
            engine.close()
        result = record.to_json()
        try:
            output, truncated = read_output(record.id, tail_bytes=OUTPUT_TAIL_BYTES)
        except UsageError:
            output, truncated = b"", False
        result["output"] = output.decode("utf-8", errors="replace")
        result["output_truncated"] = truncated
        return result

    def list_runs(self, limit: int) -> list[dict[str, Any]]:
        from roscoe.runs.records import list_runs

        return [r.to_json() for r in list_runs(limit)]

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
