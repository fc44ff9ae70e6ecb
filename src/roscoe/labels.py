"""Labels on every container roscoe creates, and the names it gives them."""

from __future__ import annotations

# Labels on every container roscoe creates: together with a stored ID they tell ours from
# a stranger's with the same name, and let `roscoe gc` sweep what a killed CLI left behind.
LABEL_PREFIX = "io.roscoe"
LABEL_MANAGED_BY = "io.roscoe.managed-by"
MANAGED_BY_VALUE = "roscoe"
LABEL_KIND = "io.roscoe.kind"  # "run" or "server"
LABEL_RUN_ID = "io.roscoe.run-id"
LABEL_OWNER_PID = "io.roscoe.owner-pid"
LABEL_OWNER_HOST = "io.roscoe.owner-host"  # owner-pid means something only on this host name
# Runs started by the execution service: the runner container, and when it started. A
# container in host networking has the host's name and a pid 1 that always exists, so pid and
# host can never say that such an owner is gone; its container id (and start) can.
LABEL_OWNER_CONTAINER = "io.roscoe.owner-container"
LABEL_OWNER_STARTED = "io.roscoe.owner-started"
LABEL_DEADLINE = "io.roscoe.deadline"  # unix seconds after which the container must be gone
LABEL_STARTED = "io.roscoe.started"
LABEL_VERSION = "io.roscoe.version"  # the roscoe version that created the container
LABEL_IMAGE_VERSION = "io.roscoe.image-version"
