"""Which runner image a command uses, and where that choice came from.

Order: --image > ROSCOE_RUNNER_IMAGE > --use-local-image (roscoe-runner:dev) > config file
> the reference pinned to this CLI version. Shared by every command that needs the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from roscoe.constants import DEV_IMAGE, pinned_image
from roscoe.settings import Settings


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


def choose_image(
    settings: Settings, flag: str | None = None, use_local: bool = False
) -> ImageChoice:
    if flag:
        return ImageChoice(flag, "--image")
    found = settings.resolve("image")
    if found.source.startswith("env"):
        return ImageChoice(str(found.value), found.source)
    if use_local:
        return ImageChoice(DEV_IMAGE, "--use-local-image")
    if found.value:
        return ImageChoice(str(found.value), found.source)
    return ImageChoice(pinned_image(), "pinned")
