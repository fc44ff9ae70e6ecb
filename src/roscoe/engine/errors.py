"""Engine failures in the user's words: one line with the cause, and a hint that fits it."""

from __future__ import annotations

from roscoe.errors import ImageError


def pull_failure(ref: str, reason: str) -> ImageError:
    """One line with the registry's reason, and a hint that fits it."""
    text = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    if len(text) > 300:
        text = text[:297] + "..."
    lowered = text.lower()
    if any(
        word in lowered
        for word in ("unauthorized", "authentication required", "denied", "forbidden")
    ):
        hint = (
            "the registry wants credentials: `docker login REGISTRY` (or `podman login`), "
            "then pull again"
        )
    elif any(
        word in lowered
        for word in ("connection refused", "no such host", "i/o timeout", "dial tcp", "pinging")
    ):
        hint = (
            "the engine cannot reach the registry; check the address and that it is up, or "
            "work offline with an image present locally (`make build-image`, --use-local-image)"
        )
    elif any(word in lowered for word in ("manifest unknown", "not found", "name unknown")):
        hint = (
            "no such tag or repository in the registry; check the reference "
            "(`roscoe image show` prints the one in use)"
        )
    else:
        hint = "`roscoe --debug image pull` shows every event the engine sent"
    return ImageError(f"could not pull {ref}: {text}", hint=hint)
