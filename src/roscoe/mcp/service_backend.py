"""The MCP tools' backend over the execution service's own run machinery: the runner's `/mcp`
endpoint's, and (`mcp.local`, the service held in its own process) `roscoe mcp`'s.

MCP runs go through the same scheduler as `POST /runs` (the same concurrency cap and
waiting line, the same records, the same cancel), so they show up in `GET /runs` and obey
`roscoe server start`'s limits. A refusal the service would answer with a status comes back
as a UsageError with the service's reason; the case and script are checked first by the run
core itself, so those refusals carry the CLI's message and hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roscoe.errors import RoscoeError, UsageError
from roscoe.mcp.backend import CANCELLED_ON_REQUEST, Principal, RunAsk, RunView

if TYPE_CHECKING:
    from roscoe.service.api import ExecutionService

# After cancel_run: how long the run may take to be reported over.
CANCEL_WAIT_S = 30.0
# While a run is under way, its last line is read from this much of output.log's end.
LAST_LINE_BYTES = 4096
NO_RUN_HINT = "a run's id comes from run_script or start_run"


class ServiceBackend:
    def __init__(self, service: ExecutionService):
        self.service = service

    def max_timeout(self) -> float:
        return float(self.service.max_timeout)

    def list_cases(self, who: Principal) -> list[dict[str, Any]]:
        return list(self._api(self.service.list_cases, who)["cases"])

    def list_tools(self, who: Principal) -> list[dict[str, Any]]:
        return list(self._api(self.service.list_tools, who)["tools"])

    def start(self, ask: RunAsk, who: Principal) -> RunView:
        from roscoe.service.validate import RunRequest

        request = RunRequest(
            case=ask.case,
            script=ask.script,
            args=tuple(ask.args),
            timeout=ask.timeout,
            wait=False,
            preview=ask.preview,
        )
        refusal = who.run_refusal(ask.case, ask.script)
        if refusal is not None:  # before the case is looked for: nothing to learn about it
            self.service.log("run_refused", caller=who.name, case=ask.case, script=ask.script)
            raise UsageError(refusal)
        self.service.backend.check(request)  # UsageError with the run core's hint
        live = self._api(self.service.submit, request, who)
        self.service.log(
            "mcp_run_submitted",
            run_id=live.id,
            principal=who.name,
            case=ask.case,
            script=ask.script,
        )
        return RunView(dict(self.service.current_record(live)))

    def wait(self, run_id: str, seconds: float) -> RunView:
        live = self.service.scheduler.get(_checked(run_id))
        if live is None:
            return RunView(dict(self._api(self.service.get_run, run_id)))
        live.done.wait(seconds)
        view = RunView(dict(self.service.current_record(live)))
        if not live.done.is_set():
            view.last_line = self._last_line(run_id)
        return view

    def view(self, run_id: str, who: Principal, tail_bytes: int) -> RunView:
        view = RunView(dict(self._api(self.service.get_run, _checked(run_id), who)))
        if tail_bytes > 0:
            found = self.service.backend.read_output(run_id, tail_bytes)
            output, cut = found or (b"", False)
            view.output = output.decode("utf-8", errors="replace")
            view.output_truncated = cut
        return view

    def cancel(self, run_id: str, who: Principal, why: str = CANCELLED_ON_REQUEST) -> RunView:
        live = self._api(self.service.cancel, _checked(run_id), who, why)
        self.service.log("mcp_run_cancel_requested", run_id=run_id, principal=who.name)
        live.done.wait(CANCEL_WAIT_S)
        return RunView(dict(self.service.current_record(live)))

    def _last_line(self, run_id: str) -> str:
        found = self.service.backend.read_output(run_id, LAST_LINE_BYTES)
        text = (found or (b"", False))[0].decode("utf-8", errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    @staticmethod
    def _api(call: Any, *args: Any) -> Any:
        """Call the service; its refusals (ApiError: status + reason) as UsageErrors."""
        from roscoe.service.api import ApiError

        try:
            return call(*args)
        except ApiError as exc:
            if exc.status == 429:
                raise UsageError(
                    exc.reason,
                    hint="wait for one to end (get_run), or stop one (cancel_run), then again",
                ) from None
            if exc.status >= 500:
                raise RoscoeError(exc.reason) from None
            if exc.status == 404:
                raise UsageError(exc.reason, hint=NO_RUN_HINT) from None
            raise UsageError(exc.reason) from None


def _checked(run_id: str) -> str:
    """The run id, when it is one; UsageError with the CLI's hint when it is not (its form
    alone: the service answers any id it does not show the caller with the same 404)."""
    from roscoe.runs.records import check_run_id

    return check_run_id(run_id)
