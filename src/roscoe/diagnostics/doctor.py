"""What `roscoe doctor` checks: the engine, gVisor, the image, the data dir, the workspace, the
runs folder and the runner. Never prints."""

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
    from roscoe.config.settings import Settings
    from roscoe.diagnostics.workspace import WorkspaceFacts
    from roscoe.engine.protocols import DiagnosticsEngine
    from roscoe.runs.isolation import Connect


@dataclass
class RunsFolderFacts:
    path: str
    runs: int
    bytes: int
    warn_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    engine: EngineReport | None = None
    workspace: WorkspaceFacts | None = None
    runs: RunsFolderFacts | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != CheckStatus.FAIL for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "engine": asdict(self.engine) if self.engine else None,
            "workspace": self.workspace.to_json() if self.workspace else None,
            "runs": self.runs.to_json() if self.runs else None,
            "checks": [c.to_json() for c in self.checks],
        }


def doctor_report(
    get_engine: Callable[[], DiagnosticsEngine],
    image_ref: str,
    image_source: str,
    settings: Settings,
    *,
    connect: Connect | None = None,
) -> DoctorReport:
    """Every check, in order; `connect` reaches run.gvisor_host for the gVisor check."""
    report = DoctorReport()
    engine: DiagnosticsEngine | None = None
    rootless: bool | None = None
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
        report.checks.append(
            gvisor_check(
                engine,
                settings.get("run.isolation"),
                settings.get("run.gvisor_host"),
                connect,
            )
        )
        report.checks.append(_image_check(engine, image_ref, image_source))
    report.checks.append(_data_dir_check())
    report.workspace = _workspace(settings, rootless)
    report.checks.extend(report.workspace.checks)
    report.runs = _runs_folder(settings)
    report.checks.append(_runs_folder_check(report.runs))
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


def _workspace(settings: Settings, rootless: bool | None) -> WorkspaceFacts:
    from pathlib import Path

    from roscoe.diagnostics.workspace import workspace_facts
    from roscoe.runs.host import container_user

    found = settings.workspace()
    return workspace_facts(
        Path(found.value),
        found.source,
        settings.get("projects_dir"),
        settings.get("tools_dir"),
        # A rootful engine reads as root; a rootless one as the user running it (us).
        engine_uid=os.getuid() if rootless else 0,
        run_user=container_user(),
    )


def _runs_folder(settings: Settings) -> RunsFolderFacts:
    from roscoe.config.parse import parse_bytes
    from roscoe.runs.retention import runs_folder_bytes

    runs, size = runs_folder_bytes()
    warn = parse_bytes(settings.get("runs.warn_size"))
    return RunsFolderFacts(str(paths.runs_dir()), runs, size, warn)


def _runs_folder_check(facts: RunsFolderFacts) -> Check:
    from roscoe.config.parse import format_bytes

    detail = f"{facts.runs} runs, {format_bytes(facts.bytes)} in {facts.path}"
    if facts.bytes > facts.warn_bytes:
        return Check(
            "runs folder",
            CheckStatus.WARN,
            f"{detail}: more than runs.warn_size ({format_bytes(facts.warn_bytes)})",
            "`roscoe runs prune --older-than 30d` (or --keep N, --max-size 5g) removes old "
            "runs; `roscoe config set service.prune true` with runs.older_than, runs.keep or "
            "runs.max_size makes the runner do it hourly",
        )
    limit = format_bytes(facts.warn_bytes)
    return Check("runs folder", CheckStatus.OK, f"{detail} (warns above {limit})")


def _free_space(where: os.PathLike[str]) -> str:
    try:
        stats = os.statvfs(where)
    except OSError:
        return ""
    return f" ({stats.f_bavail * stats.f_frsize / (1 << 30):.1f} GiB free)"
