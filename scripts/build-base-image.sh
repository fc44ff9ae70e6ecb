#!/usr/bin/env bash
# Build the offline Debian base image roscoe-base:bookworm (python3, venv, pip, CA certificates)
# from Debian's packages with mmdebstrap, and import it into Docker and/or Podman.
# No image registry is needed: this image stands in for python:*-slim as the runner
# Dockerfile's BASE_IMAGE and is the light image for one-shot run tests.
#
#   scripts/build-base-image.sh                    # every engine whose socket answers
#   scripts/build-base-image.sh --engines podman   # only podman
#   scripts/build-base-image.sh --force            # rebuild the root fs and re-import
#
# The root fs tarball is cached in $ROSCOE_ENGINES_STATE (default /tmp/roscoe-engines), so
# importing into a second engine does not rebuild it. Start the engines first:
# scripts/engines.sh start.
set -euo pipefail

STATE=${ROSCOE_ENGINES_STATE:-/tmp/roscoe-engines}
IMAGE=roscoe-base:bookworm
SUITE=bookworm
TARBALL="$STATE/roscoe-base-$SUITE.tar"
DOCKER_HOST_SOCK=unix:///var/run/docker.sock
PODMAN_HOST_SOCK=unix:///run/podman/podman.sock
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates

log() { printf '[base-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'build-base-image.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<EOF
usage: $0 [--engines docker,podman] [--force]
  --engines LIST  comma-separated subset of docker,podman (default: those whose socket answers)
  --force         rebuild the root fs tarball and re-import even if $IMAGE exists
builds $IMAGE; tarball cache: $TARBALL
EOF
}

ENGINES=""
FORCE=0
while (($#)); do
    case $1 in
        --engines) [[ $# -ge 2 ]] || die "--engines needs a value"; ENGINES=$2; shift 2 ;;
        --engines=*) ENGINES=${1#*=}; shift ;;
        --force) FORCE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

command -v docker >/dev/null 2>&1 || die "the docker client is not installed (run: scripts/engines.sh install)"

host_of() {
    case $1 in
        docker) echo "$DOCKER_HOST_SOCK" ;;
        podman) echo "$PODMAN_HOST_SOCK" ;;
        *) die "unknown engine '$1' (expected docker or podman)" ;;
    esac
}

# The docker CLI against one engine's socket (podman through its Docker-compatible API).
dk() {
    local engine=$1
    shift
    docker -H "$(host_of "$engine")" "$@"
}

answers() { timeout 10 docker -H "$(host_of "$1")" version >/dev/null 2>&1; }

if [[ -z $ENGINES ]]; then
    for e in docker podman; do
        if answers "$e"; then ENGINES+="${ENGINES:+,}$e"; fi
    done
    [[ -n $ENGINES ]] || die "neither docker ($DOCKER_HOST_SOCK) nor podman ($PODMAN_HOST_SOCK) answers; run: scripts/engines.sh start"
fi
IFS=, read -r -a ENGINE_LIST <<<"$ENGINES"
for e in "${ENGINE_LIST[@]}"; do
    host_of "$e" >/dev/null
    answers "$e" || die "$e does not answer on $(host_of "$e"); run: scripts/engines.sh start"
done

has_image() { dk "$1" image inspect "$IMAGE" >/dev/null 2>&1; }

BUILT=0
build_tarball() {
    ((BUILT)) && return
    if [[ -s $TARBALL && $FORCE -eq 0 ]]; then
        log "reusing cached root fs $TARBALL ($(du -h "$TARBALL" | cut -f1))"
        BUILT=1
        return
    fi
    command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is not installed (run: scripts/engines.sh install)"
    [[ ${EUID:-$(id -u)} -eq 0 ]] || die "building the root fs needs root (mmdebstrap root mode)"
    mkdir -p "$STATE"
    local work t0=$SECONDS
    work=$(mktemp -d "$STATE/base-build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    log "mmdebstrap $SUITE minbase + $PACKAGES (from the machine's apt sources)"
    # Like python:*-slim: let pip install into the system interpreter (drop PEP 668's marker).
    # shellcheck disable=SC2016
    # Docs, man pages and translations are left out (keeping copyright files), as slim images do.
    if ! mmdebstrap --variant=minbase --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
        "$SUITE" "$work/base.tar" >"$work/mmdebstrap.log" 2>&1; then
        printf 'build-base-image.sh: error: mmdebstrap failed; last lines of its log:\n' >&2
        tail -n 25 "$work/mmdebstrap.log" | sed 's/^/    | /' >&2
        exit 1
    fi
    mv "$work/base.tar" "$TARBALL.tmp"
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$work"
    trap - EXIT
    BUILT=1
    log "root fs built in $((SECONDS - t0)) s: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

CHANGES=(
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8'
    --change 'ENV PYTHONUNBUFFERED=1'
    --change 'CMD ["python3"]'
)

import_into() {
    local engine=$1 t0=$SECONDS old=""
    old=$(dk "$engine" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    case $engine in
        docker)
            dk docker import "${CHANGES[@]}" --message "roscoe base: Debian $SUITE minbase + python3" \
                "$TARBALL" "$IMAGE" >/dev/null
            ;;
        podman)
            command -v podman >/dev/null 2>&1 || die "podman is not installed (run: scripts/engines.sh install)"
            # Rootful podman CLI and the API service share one image store.
            # podman stores a name without a registry as localhost/NAME.
            podman import --quiet "${CHANGES[@]}" --message "roscoe base: Debian $SUITE minbase + python3" \
                "$TARBALL" "localhost/$IMAGE" >/dev/null
            ;;
    esac
    log "imported $IMAGE into $engine in $((SECONDS - t0)) s"
    local new
    new=$(dk "$engine" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    if [[ -n $old && $old != "$new" ]]; then
        dk "$engine" image rm "$old" >/dev/null 2>&1 || true
    fi
}

# Make sure the short name resolves through podman's Docker-compatible API, which is what
# roscoe (docker SDK) uses; tag the docker.io form if it does not.
ensure_podman_short_name() {
    if has_image podman; then return; fi
    if podman image exists "localhost/$IMAGE"; then
        log "short name $IMAGE does not resolve over podman's compat API; tagging docker.io/library/$IMAGE"
        podman tag "localhost/$IMAGE" "docker.io/library/$IMAGE"
    fi
    has_image podman || die "$IMAGE does not resolve through $PODMAN_HOST_SOCK after import"
}

check_python() {
    local engine=$1 out t0=$SECONDS
    out=$(dk "$engine" run --rm --network none "$IMAGE" python3 -c 'print(1)' 2>&1) ||
        die "$engine: python3 in $IMAGE failed: $out"
    [[ $out == 1 ]] || die "$engine: python3 in $IMAGE printed '$out', expected 1"
    log "$engine: python3 runs in $IMAGE ($((SECONDS - t0)) s)"
}

for e in "${ENGINE_LIST[@]}"; do
    if [[ $FORCE -eq 0 ]] && { has_image "$e" || { [[ $e == podman ]] && podman image exists "localhost/$IMAGE" 2>/dev/null; }; }; then
        log "$IMAGE already present in $e; skipping import (--force to rebuild)"
    else
        build_tarball
        import_into "$e"
    fi
    [[ $e == podman ]] && ensure_podman_short_name
    check_python "$e"
    log "$e: $IMAGE $(dk "$e" image inspect --format '{{.Id}} {{.Size}}' "$IMAGE" |
        awk '{ printf "%s, %.0f MB", substr($1, 1, 19), $2 / 1e6 }')"
done
