#!/usr/bin/env bash
# The images the test suite needs beyond the base image: the core runner image, built from
# this working tree on the Debian base and present in both engines as roscoe-runner:dev
# (and as the reference pinned to this version). Called by .ci/run after build-base-image.sh.
# Where the rootless test user exists (scripts/engines.sh install), the base and runner images
# are copied into its Podman store too, so a rebuilt image reaches rootless tests.
#
# The builder stage trusts the host's CA bundle (ROSCOE_BUILD_EXTRA_CA overrides the file;
# set it empty to trust nothing extra): where the package index is reached through a
# TLS-intercepting proxy, the host's bundle is what holds that proxy's CA.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXTRA_CA=${ROSCOE_BUILD_EXTRA_CA-/etc/ssl/certs/ca-certificates.crt}
BASE=${ROSCOE_TEST_BASE_IMAGE:-roscoe-base:bookworm}
ARGS=(--flavor core --base "$BASE" --engines docker,podman)
if [[ -n $EXTRA_CA && -s $EXTRA_CA ]]; then ARGS+=(--extra-ca "$EXTRA_CA"); fi
bash "$ROOT/scripts/build-image.sh" "${ARGS[@]}"

ROOTLESS_USER=${ROSCOE_TEST_ROOTLESS_USER:-roscoe-rootless}
if id "$ROOTLESS_USER" >/dev/null 2>&1 && [[ ${EUID:-$(id -u)} -eq 0 ]]; then
    # Every name the runner image just built carries in rootful Podman (the dev tag, the pinned one).
    RUNNER=roscoe-runner:${ROSCOE_BUILD_DEV_TAG:-dev}
    mapfile -t NAMES < <(podman image inspect --format '{{range .RepoTags}}{{println .}}{{end}}' "$RUNNER" | sed '/^$/d')
    bash "$ROOT/scripts/engines.sh" load-rootless "$BASE" "${NAMES[@]}"
else
    echo "build-test-images.sh: no rootless test user $ROOTLESS_USER here (scripts/engines.sh install); images not copied to it" >&2
fi
