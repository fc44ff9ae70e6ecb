"""Labels on every container roscoe creates, and the names it gives them."""

from __future__ import annotations

# Labels on every container roscoe creates: together with a stored ID they tell ours from
# a stranger's with the same name, and let `roscoe gc` sweep what a killed CLI left behind.
LABEL_PREFIX = "io.roscoe"
LABEL_MANAGED_BY = f"{LABEL_PREFIX}.managed-by"
MANAGED_BY_VALUE = "roscoe"
LABEL_KIND = f"{LABEL_PREFIX}.kind"  # "run" or "server"
LABEL_RUN_ID = f"{LABEL_PREFIX}.run-id"
LABEL_OWNER_PID = f"{LABEL_PREFIX}.owner-pid"
LABEL_OWNER_HOST = f"{LABEL_PREFIX}.owner-host"  # owner-pid means something only on this host name
# Runs started by the execution service: the runner container, and when it started. A
# container in host networking has the host's name and a pid 1 that always exists, so pid and
# host can never say that such an owner is gone; its container id (and start) can.
LABEL_OWNER_CONTAINER = f"{LABEL_PREFIX}.owner-container"
LABEL_OWNER_STARTED = f"{LABEL_PREFIX}.owner-started"
LABEL_DEADLINE = f"{LABEL_PREFIX}.deadline"  # unix seconds after which the container must be gone
LABEL_STARTED = f"{LABEL_PREFIX}.started"
LABEL_VERSION = f"{LABEL_PREFIX}.version"  # the roscoe version that created the container
LABEL_IMAGE_VERSION = f"{LABEL_PREFIX}.image-version"
# On the runner: a keyed digest of its environment; `server start` replaces a runner whose
# settings differ from those asked for.
LABEL_CONFIG_HASH = f"{LABEL_PREFIX}.config-hash"
