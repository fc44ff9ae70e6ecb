"""The runner image pinned to this CLI's version, and how an image's version label compares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roscoe import __version__

if TYPE_CHECKING:
    pass

# The runner image. The tag is derived from the package version so there is one number to bump.
IMAGE_REPOSITORY = "ghcr.io/roscoe-cli/roscoe-runner"
DEV_IMAGE = "roscoe-runner:dev"
OCI_VERSION_LABEL = "org.opencontainers.image.version"


def pinned_image(version: str = __version__) -> str:
    """The runner image reference this CLI version expects."""
    return f"{IMAGE_REPOSITORY}:v{version}"


@dataclass(frozen=True)
class VersionMatch:
    """Does the image (or a running container) carry the version of this CLI?"""

    status: str  # "match", "differs", "unknown" (no label, or a label that is not a version)
    image_version: str | None
    cli_version: str = __version__

    @property
    def ok(self) -> bool:
        return self.status == "match"

    def warning(self, what: str) -> tuple[str, str] | None:
        """(message, hint) to show, or None when the versions agree."""
        if self.status == "match":
            return None
        hint = (
            "`roscoe image pull` fetches the image of this version; from a source checkout, "
            "`make build-image` builds it"
        )
        if self.status == "unknown":
            return f"{what} carries no roscoe version label; it may not match this CLI", hint
        return (
            f"{what} is roscoe {self.image_version}, but this CLI is {self.cli_version}",
            hint,
        )


def version_match(image_version: str | None, cli_version: str = __version__) -> VersionMatch:
    """Compare a version label with the CLI's, as versions ('v0.1.0' == '0.1.0')."""
    from packaging.version import InvalidVersion, Version

    label = (image_version or "").strip()
    if not label or label == "unknown":
        return VersionMatch("unknown", None, cli_version)
    try:
        same = Version(label) == Version(cli_version)
    except InvalidVersion:
        return VersionMatch("unknown", label, cli_version)
    return VersionMatch("match" if same else "differs", label, cli_version)


def labels_of(inspect: Mapping[str, Any] | None) -> dict[str, str]:
    """The labels of an image's or a container's inspect data (containers inherit the image's)."""
    if not inspect:
        return {}
    return dict((inspect.get("Config") or {}).get("Labels") or {})


def image_version_label(inspect: Mapping[str, Any] | None) -> str | None:
    return labels_of(inspect).get(OCI_VERSION_LABEL) or None
