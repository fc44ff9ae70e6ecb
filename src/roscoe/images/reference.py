"""Image references: the grammar engines accept, checked without the docker SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass

from roscoe.errors import UsageError


@dataclass(frozen=True)
class ImageRef:
    """A reference split as engines split it (a `host:port/` prefix is not a tag)."""

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
    text = ref.strip()
    if not text or any(c.isspace() for c in text):
        raise UsageError(f"'{ref}' is not an image reference", hint="e.g. registry/name:tag")
    repository, tag = parse_repository_tag(text)
    digest = None
    if tag is not None and ":" in tag:  # a digest comes back as the tag
        digest = tag
        repository, tag = parse_repository_tag(repository)
    if not repository or repository.endswith("/"):
        raise UsageError(f"'{ref}' is not an image reference", hint="e.g. registry/name:tag")
    return ImageRef(repository, tag, digest)


def parse_repository_tag(text: str) -> tuple[str, str | None]:
    """(repository, tag or digest), split the way the docker SDK and CLI split it: at the
    last '@', else at the last ':' when no '/' follows it (so `host:port/name` has no tag)."""
    repository, at, digest = text.rpartition("@")
    if at:
        return repository, digest
    repository, colon, tag = text.rpartition(":")
    if colon and "/" not in tag:
        return repository, tag
    return text, None


_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REFERENCE = re.compile(
    rf"(?:(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?"
    rf"{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
