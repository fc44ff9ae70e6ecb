"""What `roscoe version` reports. Returns results; never prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from roscoe import __version__
from roscoe.errors import EngineError
from roscoe.images.version import pinned_image

if TYPE_CHECKING:
    from roscoe.engine.protocols import DiagnosticsEngine


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
    def of(cls, engine: DiagnosticsEngine) -> EngineReport:
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


def version_report(get_engine: Callable[[], DiagnosticsEngine]) -> VersionReport:
    import platform

    try:
        engine = EngineReport.of(get_engine())
        failure = None
    except EngineError as exc:
        engine = EngineReport(available=False, error=exc.message, hint=exc.hint)
        failure = exc
    return VersionReport(__version__, pinned_image(), platform.python_version(), engine, failure)
