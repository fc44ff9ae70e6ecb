#!/usr/bin/env bash
# The images the test suite needs beyond the base image: the core runner image, built from
# this working tree on the Debian base and present in both engines as roscoe-runner:dev
# (and as the reference pinned to this version). Called by .ci/run after build-base-image.sh.
#
# The builder stage trusts the host's CA bundle (ROSCOE_BUILD_EXTRA_CA overrides the file;
# set it empty to trust nothing extra): where the package index is reached through a
# TLS-intercepting proxy, the host's bundle is what holds that proxy's CA.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXTRA_CA=${ROSCOE_BUILD_EXTRA_CA-/etc/ssl/certs/ca-certificates.crt}
ARGS=(--flavor core --base "${ROSCOE_TEST_BASE_IMAGE:-roscoe-base:bookworm}" --engines docker,podman)
if [[ -n $EXTRA_CA && -s $EXTRA_CA ]]; then ARGS+=(--extra-ca "$EXTRA_CA"); fi
exec bash "$ROOT/scripts/build-image.sh" "${ARGS[@]}"
