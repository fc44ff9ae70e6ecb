"""`roscoe doctor` on isolation: can runs be had under gVisor with this engine?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roscoe.diagnostics.checks import Check, CheckStatus
from roscoe.errors import IsolationError
from roscoe.runs.isolation import GVISOR, place

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine
    from roscoe.runs.isolation import Connect


def gvisor_check(
    engine: RunEngine, isolation: str, gvisor_host: str | None, connect: Connect | None
) -> Check:
    """Fails only when run.isolation asks for gVisor; otherwise it says whether it could."""
    try:
        placement = place(engine, GVISOR, gvisor_host, connect, thorough=True)
    except IsolationError as exc:
        if isolation == GVISOR:
            return Check(
                "gvisor", CheckStatus.FAIL, f"run.isolation is gvisor, but {exc.message}", exc.hint
            )
        return Check(
            "gvisor",
            CheckStatus.OK,
            f"not available (optional; runs use runc): {exc.message}",
            exc.hint,
        )
    try:
        where = placement.engine
        how = (
            f"runtime '{placement.runtime}' registered with {where.kind}"
            if placement.runtime
            else f"{where.kind} at {where.endpoint.url} runs containers under it"
        )
    finally:
        placement.close()
    used = "runs use it (run.isolation)" if isolation == GVISOR else "runs use runc"
    return Check("gvisor", CheckStatus.OK, f"usable: {how}; {used}")
