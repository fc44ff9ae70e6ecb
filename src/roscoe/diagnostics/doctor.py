"""What `roscoe doctor` checks: the engine, the image, the data dir and the runner. Never prints."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.diagnostics.checks import Check, CheckStatus
from roscoe.diagnostics.isolation_checks import gvisor_check
from roscoe.diagnostics.runner_checks import runner_checks
from roscoe.diagnostics.version import EngineReport
from roscoe.errors import EngineError

if TYPE_CHECKING:
    from roscoe.engine.protocols import DiagnosticsEngine
    from roscoe.runs.isolation import Connect


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    engine: EngineReport | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != CheckStatus.FAIL for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "engine": asdict(self.engine) if self.engine else None,
            "checks": [c.to_json() for c in self.checks],
        }


def doctor_report(
    get_engine: Callable[[], DiagnosticsEngine],
    image_ref: str,
    image_source: str,
    *,
    isolation: str = "runc",
    gvisor_host: str | None = None,
    connect: Connect | None = None,
) -> DoctorReport:
    report = DoctorReport()
    engine: DiagnosticsEngine | None = None
    try:
        engine = get_engine()
    except EngineError as exc:
        report.engine = EngineReport(available=False, error=exc.message, hint=exc.hint)
        report.checks.append(Check("engine", CheckStatus.FAIL, exc.message, exc.hint))
    if engine is not None:
        report.engine = EngineReport.of(engine)
        report.checks.append(
            Check(
                "engine",
                CheckStatus.OK,
                f"reachable at {engine.endpoint.url} ({engine.endpoint.source})",
            )
        )
        report.checks.append(
            Check(
                "engine version",
                CheckStatus.OK,
                f"{engine.info.kind} {engine.info.version}, API {engine.info.api_version}",
            )
        )
        rootless = engine.rootless()
        report.checks.append(
            Check(
                "rootless",
                CheckStatus.OK,
                {True: "yes", False: "no (rootful)", None: "unknown"}[rootless],
            )
        )
        report.checks.append(gvisor_check(engine, isolation, gvisor_host, connect))
        report.checks.append(_image_check(engine, image_ref, image_source))
    report.checks.append(_data_dir_check())
    if engine is not None:
        # The runner's checks (state, image version, port) share one look at the runner.
        report.checks.extend(runner_checks(engine))
    return report


def _image_check(engine: DiagnosticsEngine, ref: str, source: str) -> Check:
    found = engine.image_inspect(ref)
    if found is None:
        return Check(
            "runner image",
            CheckStatus.WARN,
            f"{ref} ({source}) is not present locally",
            "it is pulled on first use; `roscoe image pull` fetches it now, "
            "`make build-image` builds it from source",
        )
    from roscoe.images.version import image_version_label, version_match

    verdict = version_match(image_version_label(found))
    mismatch = verdict.warning(f"{ref} ({source})")
    if mismatch:
        return Check("runner image", CheckStatus.WARN, mismatch[0], mismatch[1])
    return Check(
        "runner image", CheckStatus.OK, f"{ref} ({source}) present, version {verdict.image_version}"
    )


def _data_dir_check() -> Check:
    where = paths.data_dir()
    try:
        paths.ensure_dir(where)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".doctor-", delete=True):
            pass
    except OSError as exc:
        return Check(
            "data dir",
            CheckStatus.FAIL,
            f"{where} is not writable: {exc.strerror or exc}",
            "set ROSCOE_DATA_DIR to a folder you can write, or fix its permissions",
        )
    free = _free_space(where)
    return Check("data dir", CheckStatus.OK, f"{where} is writable{free}")


def _free_space(where: os.PathLike[str]) -> str:
    try:
        stats = os.statvfs(where)
    except OSError:
        return ""
    return f" ({stats.f_bavail * stats.f_frsize / (1 << 30):.1f} GiB free)"
