"""What `roscoe version` and `roscoe doctor` report. Returns results; never prints."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe import __version__, paths
from roscoe.constants import pinned_image
from roscoe.errors import EngineError

if TYPE_CHECKING:
    from roscoe.engine import Engine


@dataclass
class EngineReport:
    available: bool
    kind: str | None = None
    version: str | None = None
    api_version: str | None = None
    endpoint: str | None = None
    source: str | None = None
    error: str | None = None
    hint: str | None = None

    @classmethod
    def of(cls, engine: Engine) -> EngineReport:
        return cls(
            available=True,
            kind=engine.info.kind,
            version=engine.info.version,
            api_version=engine.info.api_version,
            endpoint=engine.endpoint.url,
            source=engine.endpoint.source,
        )


@dataclass
class VersionReport:
    cli_version: str
    runner_image: str
    python: str
    engine: EngineReport
    failure: EngineError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cli_version": self.cli_version,
            "runner_image": self.runner_image,
            "python": self.python,
            "engine": asdict(self.engine),
        }


def version_report(get_engine: Callable[[], Engine]) -> VersionReport:
    import platform

    try:
        engine = EngineReport.of(get_engine())
        failure = None
    except EngineError as exc:
        engine = EngineReport(available=False, error=exc.message, hint=exc.hint)
        failure = exc
    return VersionReport(__version__, pinned_image(), platform.python_version(), engine, failure)


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn" (works, but worth knowing), "fail"
    detail: str
    hint: str | None = None


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    engine: EngineReport | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "engine": asdict(self.engine) if self.engine else None,
            "checks": [asdict(c) for c in self.checks],
        }


# A doctor check that needs the engine: takes it and returns one Check, or a list of them
# (checks that share one look at the engine). Later features (the runner container, the
# port) add theirs to EXTRA_ENGINE_CHECKS.
EngineCheck = Callable[["Engine"], "Check | list[Check]"]
EXTRA_ENGINE_CHECKS: list[EngineCheck] = []


def doctor_report(
    get_engine: Callable[[], Engine], image_ref: str, image_source: str
) -> DoctorReport:
    report = DoctorReport()
    engine: Engine | None = None
    try:
        engine = get_engine()
    except EngineError as exc:
        report.engine = EngineReport(available=False, error=exc.message, hint=exc.hint)
        report.checks.append(Check("engine", "fail", exc.message, exc.hint))
    if engine is not None:
        report.engine = EngineReport.of(engine)
        report.checks.append(
            Check("engine", "ok", f"reachable at {engine.endpoint.url} ({engine.endpoint.source})")
        )
        report.checks.append(
            Check(
                "engine version",
                "ok",
                f"{engine.info.kind} {engine.info.version}, API {engine.info.api_version}",
            )
        )
        rootless = engine.rootless()
        report.checks.append(
            Check("rootless", "ok", {True: "yes", False: "no (rootful)", None: "unknown"}[rootless])
        )
        report.checks.append(_image_check(engine, image_ref, image_source))
    report.checks.append(_data_dir_check())
    if engine is not None:
        for check in EXTRA_ENGINE_CHECKS:
            found = check(engine)
            report.checks.extend(found if isinstance(found, list) else [found])
    return report


def _image_check(engine: Engine, ref: str, source: str) -> Check:
    found = engine.image_inspect(ref)
    if found is None:
        return Check(
            "runner image",
            "warn",
            f"{ref} ({source}) is not present locally",
            "it is pulled on first use; `roscoe image pull` fetches it now, "
            "`make build-image` builds it from source",
        )
    from roscoe.images import image_version_label, version_match

    verdict = version_match(image_version_label(found))
    mismatch = verdict.warning(f"{ref} ({source})")
    if mismatch:
        return Check("runner image", "warn", mismatch[0], mismatch[1])
    return Check("runner image", "ok", f"{ref} ({source}) present, version {verdict.image_version}")


def _data_dir_check() -> Check:
    where = paths.data_dir()
    try:
        paths.ensure_dir(where)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".doctor-", delete=True):
            pass
    except OSError as exc:
        return Check(
            "data dir",
            "fail",
            f"{where} is not writable: {exc.strerror or exc}",
            "set ROSCOE_DATA_DIR to a folder you can write, or fix its permissions",
        )
    free = _free_space(where)
    return Check("data dir", "ok", f"{where} is writable{free}")


def _free_space(where: os.PathLike[str]) -> str:
    try:
        stats = os.statvfs(where)
    except OSError:
        return ""
    return f" ({stats.f_bavail * stats.f_frsize / (1 << 30):.1f} GiB free)"


# The runner container's checks (state, image version, port); registered here so every
# doctor report has them. At the end: roscoe.server.checks imports Check from this module.
from roscoe.server.checks import CHECKS as _RUNNER_CHECKS  # noqa: E402

EXTRA_ENGINE_CHECKS.extend(_RUNNER_CHECKS)
