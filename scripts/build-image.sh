#!/usr/bin/env bash
# Build the roscoe runner image (docker/Dockerfile) and tag it twice: the reference pinned to
# this roscoe version (roscoe.images.version.pinned_image()) and roscoe-runner:dev (what
# `--use-local-image` runs). Optionally copy it into Podman too.
#
#   scripts/build-image.sh                                   # core flavour, Docker only
#   scripts/build-image.sh --engines docker,podman           # and load it into Podman
#   scripts/build-image.sh --flavor browser                  # Playwright + Debian's chromium
#   scripts/build-image.sh --base roscoe-base:bookworm --extra-ca /etc/ssl/certs/ca-certificates.crt
#
# The build uses the docker CLI's legacy builder against the Docker engine (no buildx needed) with
# host networking, so pip reaches the package index the way the host does. --extra-ca FILE (or a
# docker/ca/extra-ca.pem already in place) is trusted by the builder stage only, for builds behind
# a TLS-intercepting proxy. Without a Docker engine the image is built with `podman build`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER_SOCK=${ROSCOE_BUILD_DOCKER_HOST:-unix:///var/run/docker.sock}
PODMAN_SOCK=${ROSCOE_BUILD_PODMAN_HOST:-unix:///run/podman/podman.sock}
DEV_REPO=roscoe-runner

log() { printf '[build-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'build-image.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<EOF
usage: $0 [--version V] [--flavor core|browser] [--engines docker,podman] [--extra-ca FILE] [--base IMAGE]
  --version V      roscoe version the image carries (default: the one in src/roscoe/__init__.py);
                   it must be the version of the source being built
  --flavor F       core (default) or browser (adds Playwright and Debian's chromium)
  --engines LIST   engines that get the image (default: docker); podman gets a copy (save | load)
  --extra-ca FILE  a PEM CA bundle the builder stage trusts (TLS-intercepting proxies)
  --base IMAGE     base image (default: python:3.12-slim; here: roscoe-base:bookworm)
EOF
}

VERSION=""
FLAVOR=core
ENGINES=docker
EXTRA_CA=""
BASE=${BASE_IMAGE:-python:3.12-slim}
while (($#)); do
    case $1 in
        --version) [[ $# -ge 2 ]] || die "--version needs a value"; VERSION=$2; shift 2 ;;
        --version=*) VERSION=${1#*=}; shift ;;
        --flavor) [[ $# -ge 2 ]] || die "--flavor needs a value"; FLAVOR=$2; shift 2 ;;
        --flavor=*) FLAVOR=${1#*=}; shift ;;
        --engines) [[ $# -ge 2 ]] || die "--engines needs a value"; ENGINES=$2; shift 2 ;;
        --engines=*) ENGINES=${1#*=}; shift ;;
        --extra-ca) [[ $# -ge 2 ]] || die "--extra-ca needs a value"; EXTRA_CA=$2; shift 2 ;;
        --extra-ca=*) EXTRA_CA=${1#*=}; shift ;;
        --base) [[ $# -ge 2 ]] || die "--base needs a value"; BASE=$2; shift 2 ;;
        --base=*) BASE=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

case $FLAVOR in core | browser) ;; *) die "--flavor must be core or browser, not '$FLAVOR'" ;; esac
SOURCE_VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/src/roscoe/__init__.py")
VERSION=${VERSION:-$SOURCE_VERSION}
VERSION=${VERSION#v}
[[ $VERSION == "$SOURCE_VERSION" ]] ||
    die "--version $VERSION differs from the source's version $SOURCE_VERSION (the image's label must tell the truth)"

# The pinned reference comes from roscoe itself, so there is one place that spells it.
PINNED=$(PYTHONPATH="$ROOT/src" python3 -c \
    "import sys; from roscoe.images.version import pinned_image; print(pinned_image(sys.argv[1]))" "$VERSION")
DEV=$DEV_REPO:dev
if [[ $FLAVOR == browser ]]; then
    PINNED=$PINNED-browser
    DEV=$DEV_REPO:dev-browser
fi
# ROSCOE_BUILD_DEV_TAG=NAME builds roscoe-runner:NAME only (no pinned tag), so a branch can test
# its own image beside everyone else's (tests take it from ROSCOE_TEST_RUNNER_IMAGE).
if [[ -n ${ROSCOE_BUILD_DEV_TAG:-} ]]; then
    DEV=$DEV_REPO:$ROSCOE_BUILD_DEV_TAG
    PINNED=$DEV
fi

IFS=, read -r -a ENGINE_LIST <<<"$ENGINES"
for e in "${ENGINE_LIST[@]}"; do
    case $e in docker | podman) ;; *) die "unknown engine '$e' (expected docker or podman)" ;; esac
done
wants() { [[ ",$ENGINES," == *",$1,"* ]]; }

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (scripts/engines.sh install)"
dk() { docker -H "$DOCKER_SOCK" "$@"; }
pm() { docker -H "$PODMAN_SOCK" "$@"; }
answers() { timeout 10 docker -H "$1" version >/dev/null 2>&1; }

BUILDER=docker
if ! answers "$DOCKER_SOCK"; then
    wants docker && die "Docker does not answer at $DOCKER_SOCK (scripts/engines.sh start)"
    command -v podman >/dev/null 2>&1 || die "neither Docker ($DOCKER_SOCK) nor the podman CLI is available"
    BUILDER=podman
fi
if wants podman; then
    answers "$PODMAN_SOCK" || die "Podman does not answer at $PODMAN_SOCK (scripts/engines.sh start)"
fi
if [[ $BUILDER == docker ]]; then
    dk image inspect "$BASE" >/dev/null 2>&1 ||
        die "base image $BASE is not in Docker (make base-image, or --base IMAGE)"
fi

# The extra CA travels in the build context as docker/ca/extra-ca.pem (gitignored); the
# builder stage adds it to pip's trust, the runtime stage never sees it.
CA_DIR=$ROOT/docker/ca
CA_FILE=$CA_DIR/extra-ca.pem
PLACED_CA=0
cleanup() { if ((PLACED_CA)); then rm -f "$CA_FILE"; rmdir "$CA_DIR" 2>/dev/null || true; fi; }
trap cleanup EXIT
if [[ -n $EXTRA_CA ]]; then
    [[ -s $EXTRA_CA ]] || die "--extra-ca $EXTRA_CA is not a readable, non-empty file"
    grep -q 'BEGIN CERTIFICATE' "$EXTRA_CA" || die "--extra-ca $EXTRA_CA holds no PEM certificate"
    if [[ ! -e $CA_FILE ]]; then
        mkdir -p "$CA_DIR"
        cp "$EXTRA_CA" "$CA_FILE"
        PLACED_CA=1
    elif ! cmp -s "$EXTRA_CA" "$CA_FILE"; then
        die "$CA_FILE already exists and differs from --extra-ca $EXTRA_CA; remove one of them"
    fi
fi
[[ -s $CA_FILE ]] && log "builder stage trusts the extra CA in ${CA_FILE#"$ROOT"/}"

REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $REVISION != unknown ]] && [[ -n $(git -C "$ROOT" status --porcelain -- src pyproject.toml docker 2>/dev/null) ]]; then
    REVISION=$REVISION-dirty
fi
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
BUILD_ARGS=(
    --build-arg "BASE_IMAGE=$BASE"
    --build-arg "FLAVOR=$FLAVOR"
    --build-arg "VERSION=$VERSION"
    --build-arg "REVISION=$REVISION"
    --build-arg "CREATED=$CREATED"
)

image_id() { "$1" image inspect --format '{{.Id}}' "$2" 2>/dev/null || true; }
# A rebuild leaves the previous image untagged; remove it unless a container still uses it.
drop_old() {
    local cli=$1 old=$2 new
    new=$(image_id "$cli" "$DEV")
    if [[ -n $old && $old != "$new" ]]; then "$cli" image rm "$old" >/dev/null 2>&1 || true; fi
}

t0=$SECONDS
log "building $PINNED and $DEV (flavour $FLAVOR, base $BASE) with $BUILDER"
if [[ $BUILDER == docker ]]; then
    old=$(image_id dk "$DEV")
    DOCKER_BUILDKIT=0 dk build --network host --force-rm -f "$ROOT/docker/Dockerfile" \
        "${BUILD_ARGS[@]}" -t "$PINNED" -t "$DEV" "$ROOT" || die "the build failed (above);
  certificate errors from pip mean a TLS-intercepting proxy: pass --extra-ca FILE with its CA"
    drop_old dk "$old"
else
    podman build --network host --force-rm --layers -f "$ROOT/docker/Dockerfile" \
        "${BUILD_ARGS[@]}" -t "$PINNED" -t "$DEV" "$ROOT" || die "the build failed (above);
  certificate errors from pip mean a TLS-intercepting proxy: pass --extra-ca FILE with its CA"
fi
log "built in $((SECONDS - t0)) s"

# roscoe talks to Podman through its Docker-compatible API, which must resolve the short name.
podman_short_name() {
    pm image inspect "$DEV" >/dev/null 2>&1 && return
    if podman image exists "localhost/$DEV" 2>/dev/null; then
        podman tag "localhost/$DEV" "docker.io/library/$DEV"
    fi
    pm image inspect "$DEV" >/dev/null 2>&1 || die "$DEV does not resolve through $PODMAN_SOCK"
}

if wants podman && [[ $BUILDER == docker ]]; then
    new=$(image_id dk "$DEV")
    if [[ $(image_id pm "$DEV") == "$new" ]]; then
        log "podman already has this image ($new)"
    else
        t1=$SECONDS
        old=$(image_id pm "$DEV")
        command -v podman >/dev/null 2>&1 || die "the podman CLI is needed to load the image into Podman"
        dk save "$PINNED" "$DEV" | podman load --quiet >/dev/null
        podman_short_name
        drop_old pm "$old"
        log "loaded into podman in $((SECONDS - t1)) s"
    fi
elif [[ $BUILDER == podman ]]; then
    podman_short_name
fi

# Sizes: the image, its base, and what the image adds on top.
report_sizes() {
    local cli=$1 name=$2 size base
    size=$("$cli" image inspect --format '{{.Size}}' "$DEV")
    base=$("$cli" image inspect --format '{{.Size}}' "$BASE" 2>/dev/null || echo 0)
    awk -v n="$name" -v s="$size" -v b="$base" -v img="$DEV" -v bi="$BASE" 'BEGIN {
        printf "%s: %s %.0f MB; base %s %.0f MB; adds %.0f MB\n", n, img, s / 1e6, bi, b / 1e6, (s - b) / 1e6 }'
}
if [[ $BUILDER == docker ]]; then report_sizes dk docker; fi
if wants podman; then report_sizes pm podman; fi
printf 'tagged %s and %s (roscoe %s, revision %s)\n' "$PINNED" "$DEV" "$VERSION" "$REVISION"
