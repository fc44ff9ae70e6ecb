"""Which runner image a command uses, and where that choice came from.

Order: --image > ROSCOE_RUNNER_IMAGE > --use-local-image (roscoe-runner:dev) > config file
> the reference pinned to this CLI version. Shared by every command that needs the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from roscoe.config.settings import Settings
from roscoe.errors import UsageError
from roscoe.images.reference import _REFERENCE, parse_reference
from roscoe.images.version import (
    DEV_IMAGE,
    pinned_image,
)

if TYPE_CHECKING:
    pass

PULL_POLICIES = ("missing", "always", "never")


@dataclass(frozen=True)
class ImageChoice:
    ref: str
    source: (
        str  # "--image", "env ROSCOE_RUNNER_IMAGE", "--use-local-image", "config file", "pinned"
    )

    @property
    def local_only(self) -> bool:
        """The dev image is built here by `make build-image`: never pulled."""
        return self.source == "--use-local-image"

    def warnings(self) -> list[str]:
        """What the user should know about the reference itself (not the image)."""
        if self.local_only:
            return []
        if not parse_reference(self.ref).pinned:
            return [
                f"{self.ref} ({self.source}) is not pinned: `latest` or no tag can change under "
                f"you; this CLI expects {pinned_image()}"
            ]
        return []


def choose_image(
    settings: Settings, flag: str | None = None, use_local: bool = False
) -> ImageChoice:
    """The image a command uses (order in the module's docstring); UsageError (2) when the
    reference chosen is not an image reference, or --image is given empty."""
    if flag is not None:
        choice = ImageChoice(flag, "--image")
    else:
        found = settings.resolve("image")
        if found.source.startswith("env"):
            choice = ImageChoice(str(found.value), found.source)
        elif use_local:
            choice = ImageChoice(DEV_IMAGE, "--use-local-image")
        elif found.value:
            choice = ImageChoice(str(found.value), found.source)
        else:
            choice = ImageChoice(pinned_image(), "pinned")
    # The reference grammar the engines accept ([host[:port]/]path[:tag][@digest]), checked
    # here so a typo is exit 2 before any container, not an engine error (125) after one.
    # A regex, not the SDK's parser: this runs on every `roscoe run`, which never loads the SDK.
    if not _REFERENCE.fullmatch(choice.ref):
        raise UsageError(
            f"{choice.source}: '{choice.ref}' is not an image reference",
            hint="e.g. registry:5000/team/name:tag (lowercase name, tag of letters, digits, ._-)",
        )
    return choice
