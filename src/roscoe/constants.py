"""Names and numbers every part of roscoe agrees on: exit codes, labels, image references."""

from __future__ import annotations

from enum import IntEnum

from roscoe import __version__


class ExitCode(IntEnum):
    """Documented exit codes (README, "Exit codes"). A run's script code passes straight through."""

    OK = 0
    FAILED = 1  # the operation failed, or the state is not the one asked for
    USAGE = 2  # invalid usage or input
    NO_ENGINE = 3  # no reachable container engine
    IMAGE = 4  # image absent and not pullable, or the pull failed
    TIMEOUT = 124  # roscoe run: the script ran past --timeout
    ENGINE_DURING_RUN = 125  # roscoe run: the engine failed while the run was under way
    OOM = 137  # roscoe run: killed at the memory limit (128 + SIGKILL)
    INTERRUPTED = 130  # roscoe run: Ctrl-C or SIGTERM


# Labels on every container roscoe creates: together with a stored ID they tell ours from
# a stranger's with the same name, and let `roscoe gc` sweep what a killed CLI left behind.
LABEL_PREFIX = "io.roscoe"
LABEL_MANAGED_BY = "io.roscoe.managed-by"
MANAGED_BY_VALUE = "roscoe"
LABEL_KIND = "io.roscoe.kind"  # "run" or "server"
LABEL_RUN_ID = "io.roscoe.run-id"
LABEL_OWNER_PID = "io.roscoe.owner-pid"
LABEL_OWNER_HOST = "io.roscoe.owner-host"  # owner-pid means something only on this host name
LABEL_DEADLINE = "io.roscoe.deadline"  # unix seconds after which the container must be gone
LABEL_STARTED = "io.roscoe.started"
LABEL_VERSION = "io.roscoe.version"  # the roscoe version that created the container
LABEL_IMAGE_VERSION = "io.roscoe.image-version"
OCI_VERSION_LABEL = "org.opencontainers.image.version"

# The runner image. The tag is derived from the package version so there is one number to bump.
IMAGE_REPOSITORY = "ghcr.io/roscoe-cli/roscoe-runner"
DEV_IMAGE = "roscoe-runner:dev"


def pinned_image(version: str = __version__) -> str:
    """The runner image reference this CLI version expects."""
    return f"{IMAGE_REPOSITORY}:v{version}"


DEFAULT_CONTAINER_NAME = "roscoe-runner"
DEFAULT_PORT = 8765
