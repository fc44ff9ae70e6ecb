"""Making sure the image a command uses is there.

`ensure_image()` is the one way a command gets the image: a reference present locally is used
as it is, without touching the network (offline works); otherwise the pull policy decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe.errors import ImageError, UsageError
from roscoe.images.choice import PULL_POLICIES, ImageChoice
from roscoe.images.reference import parse_reference
from roscoe.images.version import (
    VersionMatch,
    image_version_label,
    version_match,
)

if TYPE_CHECKING:
    from roscoe.engine.protocols import ImageEngine
    from roscoe.images.pull import PullSnapshot


# -- making sure the image is there -----------------------------------------------------------
@dataclass
class ImageStatus:
    """The image a command will use, as the engine has it."""

    ref: str
    source: str
    local_only: bool
    present: bool
    pulled: bool = False
    image_id: str | None = None
    digest: str | None = None  # the RepoDigest of this reference's repository, if pulled/pushed
    repo_digests: list[str] = field(default_factory=list)
    version: str | None = None
    version_match: VersionMatch = field(default_factory=lambda: version_match(None))
    warnings: list[tuple[str, str | None]] = field(default_factory=list)
    inspect: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "source": self.source,
            "local_only": self.local_only,
            "present": self.present,
            "pulled": self.pulled,
            "image_id": self.image_id,
            "digest": self.digest,
            "repo_digests": self.repo_digests,
            "version": self.version,
            "cli_version": self.version_match.cli_version,
            "version_match": self.version_match.status,
            "warnings": [message for message, _ in self.warnings],
        }


def image_status(
    engine: ImageEngine, choice: ImageChoice, inspect: dict[str, Any] | None = None
) -> ImageStatus:
    """What the engine has for the chosen reference, without pulling."""
    found = inspect if inspect is not None else engine.image_inspect(choice.ref)
    status = ImageStatus(
        ref=choice.ref,
        source=choice.source,
        local_only=choice.local_only,
        present=found is not None,
    )
    status.warnings.extend((message, None) for message in choice.warnings())
    if found is None:
        return status
    status.inspect = found
    status.image_id = str(found.get("Id") or "") or None
    status.repo_digests = [str(d) for d in found.get("RepoDigests") or []]
    status.digest = _repo_digest(choice.ref, status.repo_digests)
    status.version = image_version_label(found)
    status.version_match = version_match(status.version)
    mismatch = status.version_match.warning(f"image {choice.ref}")
    if mismatch:
        status.warnings.append(mismatch)
    return status


def ensure_image(
    engine: ImageEngine,
    choice: ImageChoice,
    pull_policy: str = "missing",
    progress: Callable[[PullSnapshot], None] | None = None,
) -> ImageStatus:
    """Make sure the chosen image is present, pulling it as the policy allows.

    missing (default): pull only when absent; a present image never touches the network.
    always: pull even when present (the local dev image is never pulled). never: absent is an
    error. Raises ImageError (exit 4) with a hint when the image cannot be had.
    """
    if pull_policy not in PULL_POLICIES:
        raise UsageError(
            f"--pull must be one of {', '.join(PULL_POLICIES)}, not '{pull_policy}'",
        )
    # "always" pulls anyway: no need to look first (the dev image is never pulled, so it is).
    looks_first = pull_policy != "always" or choice.local_only
    found = engine.image_inspect(choice.ref) if looks_first else None
    if found is not None:
        return image_status(engine, choice, found)
    if choice.local_only:
        raise ImageError(
            f"{choice.ref} is not built on {engine.kind} (--use-local-image never pulls)",
            hint="build it with `make build-image` (IMAGE_ENGINES=docker,podman for both "
            "engines), or drop --use-local-image to use the published image",
        )
    if found is None and pull_policy == "never":
        raise ImageError(
            f"image {choice.ref} is not present on {engine.kind}, and --pull never forbids "
            "pulling it",
            hint="`roscoe image pull` fetches it (or use --pull missing); "
            "`make build-image` builds it from source",
        )
    from roscoe.images.pull import pull_image

    result = pull_image(engine, choice.ref, progress)
    status = image_status(engine, choice, result.inspect)
    status.pulled = True
    return status


def _repo_digest(ref: str, repo_digests: list[str]) -> str | None:
    """The RepoDigest of the repository asked for (a digest from another registry is not it)."""
    try:
        repository = parse_reference(ref).repository
    except UsageError:
        return None
    for entry in repo_digests:
        name = str(entry).split("@", 1)[0]
        # Docker Hub names come back as docker.io/library/NAME from Podman.
        if name == repository or name.endswith("/" + repository):
            return str(entry)
    return None
