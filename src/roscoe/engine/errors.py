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


GVISOR_RUNTIME = "runsc"  # the name gVisor's runtime is registered under (Docker) / has (Podman)
PODMAN_GVISOR_SOCKET = "/run/podman/podman-gvisor.sock"


def gvisor_hint(kind: str) -> str:
    """How to make gVisor usable on this kind of engine (docs/usage.md, "Isolation")."""
    if kind == "podman":
        return (
            "Podman's API ignores the runtime a client asks for, so gVisor needs a Podman API "
            "service of its own whose default runtime is runsc: install runsc (Debian/Ubuntu: "
            "`apt-get install runsc`), start `podman --runtime runsc --runtime-flag "
            f"network=none system service --time=0 unix://{PODMAN_GVISOR_SOCKET}` and set "
            f"ROSCOE_GVISOR_HOST=unix://{PODMAN_GVISOR_SOCKET} (or run.gvisor_host)"
        )
    return (
        "install runsc (Debian/Ubuntu: `apt-get install runsc`; elsewhere see gvisor.dev), "
        'register it in /etc/docker/daemon.json as {"runtimes": {"runsc": {"path": '
        '"/usr/bin/runsc"}}} and restart dockerd (`docker info` then lists runsc)'
    )


def unknown_runtime(reason: str) -> bool:
    """Docker's answer to a runtime it does not know (400: 'Unknown runtime specified x')."""
    return "unknown runtime" in reason.lower()
