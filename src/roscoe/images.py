"""Which runner image a command uses, where that choice came from, and making sure it is there.

Order: --image > ROSCOE_RUNNER_IMAGE > --use-local-image (roscoe-runner:dev) > config file
> the reference pinned to this CLI version. Shared by every command that needs the image.

`ensure_image()` is the one way a command gets the image: a reference present locally is used
as it is, without touching the network (offline works); otherwise the pull policy decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roscoe import __version__
from roscoe.constants import DEV_IMAGE, OCI_VERSION_LABEL, pinned_image
from roscoe.errors import ImageError, UsageError
from roscoe.settings import Settings

if TYPE_CHECKING:
    from roscoe.engine import Engine
    from roscoe.pull import PullSnapshot

PULL_POLICIES = ("missing", "always", "never")


@dataclass(frozen=True)
class ImageRef:
    """A reference split by the SDK's parser (a `host:port/` prefix is not a tag)."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        """A digest, or a tag other than `latest`: the same reference gives the same image."""
        return self.digest is not None or (self.tag is not None and self.tag != "latest")

    @property
    def pull_tag(self) -> str:
        """What the engine's pull takes as `tag`: the digest when there is one."""
        return self.digest or self.tag or "latest"


def parse_reference(ref: str) -> ImageRef:
    """'127.0.0.1:5000/team/img:v1' -> (127.0.0.1:5000/team/img, v1); digests kept apart."""
    from docker.utils import parse_repository_tag

    text = ref.strip()
    if not text or any(c.isspace() for c in text):
        raise UsageError(f"'{ref}' is not an image reference", hint="e.g. registry/name:tag")
    repository, tag = parse_repository_tag(text)
    digest = None
    if tag is not None and ":" in tag:  # parse_repository_tag returns a digest as the tag
        digest = tag
        repository, tag = parse_repository_tag(repository)
    if not repository or repository.endswith("/"):
        raise UsageError(f"'{ref}' is not an image reference", hint="e.g. registry/name:tag")
    return ImageRef(repository, tag, digest)


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


_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REFERENCE = re.compile(
    rf"(?:(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?"
    rf"{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


# -- versions -----------------------------------------------------------------------------------
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


def container_version_match(engine: Engine, container: str) -> VersionMatch | None:
    """The version verdict for a container (e.g. the running runner); None when it is gone."""
    found = engine.inspect_container(container)
    if found is None:
        return None
    return version_match(image_version_label(found))


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
    engine: Engine, choice: ImageChoice, inspect: dict[str, Any] | None = None
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
    engine: Engine,
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
    from roscoe.pull import pull_image

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
