#!/usr/bin/env bash
# Install, start, stop and inspect the container engines and services roscoe's tests use:
# Docker (dockerd, no bridge, gVisor's runsc registered as runtime `runsc`), Podman (rootful
# API service), a registry on loopback, a second rootful Podman API service whose containers
# run under gVisor, a rootless Podman API service of a test user, and an S3 bucket (moto on
# loopback) mounted with s3fs.
#
#   scripts/engines.sh install   # apt packages, config, the test user, moto's venv (idempotent)
#   scripts/engines.sh start     # start whatever is not already answering
#   scripts/engines.sh status    # one line per service; exit 0 if all are up, 3 if not
#   scripts/engines.sh env       # shell exports: eval "$(scripts/engines.sh env)"
#   scripts/engines.sh stop [NAME...]  # stop only what `start` started (PIDs in $STATE/*.pid)
#   scripts/engines.sh load-rootless IMAGE...  # copy images from rootful Podman to the test user
#   scripts/engines.sh services  # the service names, in start order
#
# State (logs, pid files, configs, registry storage, moto's venv, the bucket's mount point)
# lives in $ROSCOE_ENGINES_STATE, default /tmp/roscoe-engines. Network: loopback only.
#
# Other people may run tests against these engines: a restart or a stop takes the exclusive
# lock on $ROSCOE_ENGINES_LOCK (default /tmp/roscoe-engines.lock; tests hold it shared), unless
# a caller of this script already holds it exclusively (`flock -x LOCK scripts/engines.sh ...`).
set -euo pipefail

STATE=${ROSCOE_ENGINES_STATE:-/tmp/roscoe-engines}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd) # absolute: daemons are launched from inside it
LOCK_FILE=${ROSCOE_ENGINES_LOCK:-/tmp/roscoe-engines.lock}
LOCK_WAIT=${ROSCOE_ENGINES_LOCK_WAIT:-1800}
DOCKER_SOCK=/var/run/docker.sock
PODMAN_SOCK=/run/podman/podman.sock
REGISTRY_ADDR=127.0.0.1:5000
START_DEADLINE=${ROSCOE_ENGINES_START_DEADLINE:-60}
STOP_GRACE=15

# gVisor: the runtime's name in both engines, and its binary (Debian's `runsc` package).
# There is no network namespace plumbing here, so runsc always runs with --network=none.
RUNSC=/usr/bin/runsc
RUNSC_NAME=runsc
RUNSC_ARGS=(--network=none)
DOCKERD_CONFIG=$STATE/dockerd.json
GVISOR_PODMAN_SOCK=/run/podman/podman-gvisor.sock

# Rootless Podman: a test user with subordinate ids, its runtime dir and its API service.
ROOTLESS_USER=${ROSCOE_TEST_ROOTLESS_USER:-roscoe-rootless}

# The bucket: moto's S3 API on loopback, one bucket, mounted with s3fs (fake credentials).
MOTO_VENV=$STATE/moto-venv
MOTO_HOST=127.0.0.1
MOTO_PORT=5100
S3_ENDPOINT=http://$MOTO_HOST:$MOTO_PORT
S3_BUCKET=roscoe-test-bucket
S3_KEY_ID=roscoe-test-key
S3_SECRET=roscoe-test-secret
S3_PASSWD_FILE=$STATE/s3fs-passwd
BUCKET_DIR=$STATE/bucket

# Start order; `stop` goes the other way.
SERVICES=(dockerd podman registry podman-gvisor podman-rootless moto bucket)

# Every address here is loopback: never through a proxy (s3fs and boto3 honour these).
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

log() { printf '[engines %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'engines.sh: error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ ${EUID:-$(id -u)} -eq 0 ]] || die "'$1' must run as root (try: sudo $0 $1)"
}

# ---------------------------------------------------------------- the engines lock
LOCK_FD=""
LOCK_MINE=0

# READ or WRITE when a process this script descends from holds $LOCK_FILE (flock), else nothing.
lock_held_by_caller() {
    [[ -e $LOCK_FILE ]] || return 0
    local inode p ancestors=" "
    inode=$(stat -c %i "$LOCK_FILE")
    p=$$
    while [[ -n $p && $p -gt 1 ]]; do
        ancestors+="$p "
        p=$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ') || break
    done
    # /proc/locks: "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END" (waiters have "->").
    awk -v ino=":$inode" -v anc="$ancestors" '
        $2 == "FLOCK" && substr($6, length($6) - length(ino) + 1) == ino && index(anc, " " $5 " ") {
            print $4; exit
        }' /proc/locks
}

# Take the exclusive lock for a restart or a stop of something tests use ($1: why).
take_lock() {
    ((LOCK_MINE)) && return 0
    [[ -n $LOCK_FD ]] && return 0
    case $(lock_held_by_caller) in
        WRITE)
            LOCK_FD=caller
            return 0
            ;;
        READ) die "$1 needs the exclusive lock on $LOCK_FILE, but a caller of this script holds it shared" ;;
    esac
    exec {LOCK_FD}>>"$LOCK_FILE"
    if ! flock -x -n "$LOCK_FD"; then
        log "$1: waiting for the exclusive lock on $LOCK_FILE (test runs hold it shared; up to ${LOCK_WAIT} s)"
        flock -x -w "$LOCK_WAIT" "$LOCK_FD" || die "$1: no exclusive lock on $LOCK_FILE after ${LOCK_WAIT} s"
    fi
    LOCK_MINE=1
}

release_lock() {
    if ((LOCK_MINE)); then
        flock -u "$LOCK_FD"
        exec {LOCK_FD}>&-
    fi
    LOCK_FD=""
    LOCK_MINE=0
}

# ---------------------------------------------------------------- rootless user
RL_UID=""
RL_GID=""
RL_HOME=""
RL_RUNTIME_DIR=""
RL_SOCK=""

rootless_ids() {
    RL_UID=$(id -u "$ROOTLESS_USER" 2>/dev/null) || return 1
    RL_GID=$(id -g "$ROOTLESS_USER")
    RL_HOME=$(getent passwd "$ROOTLESS_USER" | cut -d: -f6)
    RL_RUNTIME_DIR=/run/user/$RL_UID
    RL_SOCK=$RL_RUNTIME_DIR/podman/podman.sock
}

# The argv prefix that runs a command as the test user, with a clean login-like environment
# (setpriv and env exec: the PID stays the command's own).
rootless_exec() {
    RL_EXEC=(setpriv "--reuid=$RL_UID" "--regid=$RL_GID" --init-groups
        env -i "HOME=$RL_HOME" "USER=$ROOTLESS_USER" "LOGNAME=$ROOTLESS_USER"
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        "XDG_RUNTIME_DIR=$RL_RUNTIME_DIR")
}

as_rootless() {
    rootless_exec
    (cd / && "${RL_EXEC[@]}" "$@")
}

# ---------------------------------------------------------------- probes
ping_socket() {
    [[ -S $1 ]] || return 1
    local out
    out=$(curl -fsS --max-time 5 --noproxy '*' --unix-socket "$1" http://d/_ping 2>/dev/null) || return 1
    [[ $out == OK ]]
}

docker_up() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 10 docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1
}

# The runtimes the answering dockerd knows, one per line.
docker_runtimes() {
    # shellcheck disable=SC2016  # a Go template, not a shell expansion
    timeout 10 docker -H "unix://$DOCKER_SOCK" info --format '{{range $k, $v := .Runtimes}}{{println $k}}{{end}}' 2>/dev/null
}

# (grep without -q: an early exit would be a SIGPIPE for docker, a failure under pipefail)
docker_has_runsc() { docker_runtimes | grep -x "$RUNSC_NAME" >/dev/null; }

registry_up() {
    curl -fsS --max-time 5 --noproxy '*' -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null
}

rootless_up() {
    rootless_ids || return 1
    ping_socket "$RL_SOCK"
}

moto_up() {
    curl -fsS --max-time 5 --noproxy '*' -o /dev/null "$S3_ENDPOINT/" 2>/dev/null
}

# Mounted, answering (a dead s3fs leaves "Transport endpoint is not connected") and set up.
bucket_up() {
    mountpoint -q "$BUCKET_DIR" 2>/dev/null && [[ -d $BUCKET_DIR/projects && -d $BUCKET_DIR/Tools ]]
}

probe() {
    case $1 in
        dockerd) docker_up ;;
        podman) ping_socket "$PODMAN_SOCK" ;;
        registry) registry_up ;;
        podman-gvisor) ping_socket "$GVISOR_PODMAN_SOCK" ;;
        podman-rootless) rootless_up ;;
        moto) moto_up ;;
        bucket) bucket_up ;;
    esac
}

# ---------------------------------------------------------------- install
CONTAINERS_CONF=/etc/containers/containers.conf
CONF_CHANGED=0
REGISTRIES_CONF=/etc/containers/registries.conf.d/50-local.conf

write_containers_conf() {
    mkdir -p /etc/containers
    if [[ -f $CONTAINERS_CONF ]] && grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=' "$CONTAINERS_CONF"; then
        log "$CONTAINERS_CONF already sets default_ulimits; left as it is"
        return
    fi
    CONF_CHANGED=1
    local line='default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]'
    if [[ -f $CONTAINERS_CONF ]] && grep -Eq '^[[:space:]]*\[containers\][[:space:]]*$' "$CONTAINERS_CONF"; then
        # Add the key right under the existing [containers] table.
        local tmp
        tmp=$(mktemp "$CONTAINERS_CONF.XXXXXX")
        awk -v line="$line" '{ print } /^[[:space:]]*\[containers\][[:space:]]*$/ && !done { print line; done = 1 }' \
            "$CONTAINERS_CONF" >"$tmp"
        chmod 644 "$tmp"
        mv "$tmp" "$CONTAINERS_CONF"
    else
        # runc here refuses podman's default rlimits ("error setting rlimit type 7"): cap them.
        {
            [[ -s $CONTAINERS_CONF ]] && echo
            echo '# Added by roscoe scripts/engines.sh: runc cannot raise podman default rlimits here.'
            echo '[containers]'
            echo "$line"
        } >>"$CONTAINERS_CONF"
    fi
    log "wrote default_ulimits to $CONTAINERS_CONF"
}

write_registries_conf() {
    mkdir -p "$(dirname "$REGISTRIES_CONF")"
    local want
    want=$(printf '%s\n' \
        '# Added by roscoe scripts/engines.sh: the test registry on loopback speaks plain HTTP.' \
        '[[registry]]' \
        "location = \"$REGISTRY_ADDR\"" \
        'insecure = true')
    if [[ -f $REGISTRIES_CONF ]] && [[ $(cat "$REGISTRIES_CONF") == "$want" ]]; then
        return
    fi
    printf '%s\n' "$want" >"$REGISTRIES_CONF"
    CONF_CHANGED=1
    log "wrote $REGISTRIES_CONF ($REGISTRY_ADDR insecure)"
}

install_packages() {
    # binary -> Debian package
    local -A wanted=(
        [dockerd]=docker.io [podman]=podman [docker-registry]=docker-registry
        [mmdebstrap]=mmdebstrap [curl]=curl
        [runsc]=runsc [newuidmap]=uidmap [slirp4netns]=slirp4netns
        [s3fs]=s3fs [fusermount]=fuse3 [setpriv]=util-linux
    )
    local bin pkgs=()
    for bin in "${!wanted[@]}"; do
        command -v "$bin" >/dev/null 2>&1 || pkgs+=("${wanted[$bin]}")
    done
    if ! ((${#pkgs[@]})); then
        log "engine packages are installed (docker.io podman docker-registry mmdebstrap runsc uidmap slirp4netns s3fs fuse3)"
        return
    fi
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    log "installing ${pkgs[*]} (about a minute)"
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get -o DPkg::Lock::Timeout=600 update -q || die "apt-get update failed"
    apt-get -o DPkg::Lock::Timeout=600 install -y -q "${pkgs[@]}" ||
        die "apt-get install ${pkgs[*]} failed"
    log "packages installed in $((SECONDS - t0)) s"
}

# The test user for rootless Podman: its own uid, 65536 subordinate uids and gids, and
# Podman's overlay driver (left to itself, rootless Podman 4.3 picks vfs here, which copies
# every layer in full).
install_rootless_user() {
    local t0=$SECONDS
    if ! id "$ROOTLESS_USER" >/dev/null 2>&1; then
        # useradd also gives it subordinate id ranges (SUB_UID_* in /etc/login.defs). Its uid is
        # 2000 or above: never 1000, the runner image's user, so no test passes by that accident.
        useradd -K UID_MIN=2000 -K GID_MIN=2000 --create-home --user-group --shell /usr/sbin/nologin \
            --comment "roscoe rootless Podman tests" "$ROOTLESS_USER"
        log "created user $ROOTLESS_USER"
    fi
    rootless_ids
    local file flag start
    for file in /etc/subuid /etc/subgid; do
        if ! grep -q "^$ROOTLESS_USER:" "$file" 2>/dev/null; then
            # After every range already given out.
            start=$(awk -F: 'BEGIN { m = 100000 } { if ($2 + $3 > m) m = $2 + $3 } END { print m }' "$file" 2>/dev/null || echo 100000)
            flag=--add-subuids
            [[ $file == /etc/subgid ]] && flag=--add-subgids
            usermod "$flag" "$start-$((start + 65535))" "$ROOTLESS_USER"
            log "gave $ROOTLESS_USER ${file#/etc/} $start-$((start + 65535))"
        fi
    done
    local conf_dir=$RL_HOME/.config/containers
    if [[ ! -f $conf_dir/storage.conf ]]; then
        install -d -o "$RL_UID" -g "$RL_GID" -m 0755 "$RL_HOME/.config" "$conf_dir"
        printf '%s\n' '# Written by roscoe scripts/engines.sh: overlay, not vfs.' \
            '[storage]' 'driver = "overlay"' >"$conf_dir/storage.conf"
        chown "$RL_UID:$RL_GID" "$conf_dir/storage.conf"
        log "wrote $conf_dir/storage.conf (overlay)"
    fi
    # It reads /etc/containers/containers.conf too: the default_ulimits there cover it.
    log "rootless user $ROOTLESS_USER (uid $RL_UID) ready in $((SECONDS - t0)) s"
}

# moto's S3 server and boto3 in a venv of their own (never the project's).
install_moto() {
    if [[ -x $MOTO_VENV/bin/moto_server ]] &&
        "$MOTO_VENV/bin/python" -c 'import boto3, moto.server' >/dev/null 2>&1; then
        log "moto and boto3 are installed in $MOTO_VENV"
        return
    fi
    local t0=$SECONDS
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV" || die "python3 -m venv $MOTO_VENV failed (is python3-venv installed?)"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' boto3 ||
        die "pip install moto[server] boto3 into $MOTO_VENV failed"
    log "moto and boto3 installed into $MOTO_VENV in $((SECONDS - t0)) s"
}

cmd_install() {
    need_root install
    install_packages
    # Both files are read by podman's service when it starts: written before `start`.
    write_containers_conf
    write_registries_conf
    if ((CONF_CHANGED)) && ping_socket "$PODMAN_SOCK"; then
        log "note: the podman service is running with the old config; restart it ($0 stop podman, if it started it; then $0 start)"
    fi
    install_rootless_user
    install_moto
}

# ---------------------------------------------------------------- start
pidfile() { echo "$STATE/$1.pid"; }

# Launch "$@" detached (own session, stdin from /dev/null, output to $STATE/<name>.log) and
# record its exact PID in $STATE/<name>.pid (the child writes its own PID, then execs). The
# child closes every inherited descriptor beyond stderr: a daemon started under
# `flock LOCK engines.sh start` must not hold the lock for as long as it lives.
# LAUNCH_CWD overrides the working folder (default: the state folder).
launch() {
    local name=$1
    shift
    local pf logf cwd=${LAUNCH_CWD:-$STATE}
    pf=$(pidfile "$name")
    logf="$STATE/$name.log"
    rm -f "$pf" "$pf.tmp"
    : >"$logf"
    # From the state folder, not the caller's: daemons leave files in their working folder
    # (Podman's container monitor writes an `oom` marker there when a container is OOM-killed).
    # shellcheck disable=SC2016
    (cd "$cwd" && setsid -f bash -c '
        for fd in $(ls /proc/$$/fd); do ((fd > 2)) && eval "exec $fd>&-"; done
        echo $$ >"$1.tmp" && mv "$1.tmp" "$1"; shift; exec "$@"' \
        _ "$pf" "$@" </dev/null >>"$logf" 2>&1)
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pf ]] && break
        sleep 0.1
    done
    [[ -s $pf ]] || die "$name: could not launch $1 (no pid recorded); log: $logf"
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The pid in $STATE/<name>.pid when that process is alive, else nothing.
our_pid() {
    local pid
    pid=$(cat "$(pidfile "$1")" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid"; then echo "$pid"; fi
}

wait_until_up() {
    local name=$1 what=$2 t0=$SECONDS pid
    pid=$(cat "$(pidfile "$name")")
    while ! probe "$name"; do
        if ! pid_alive "$pid"; then
            fail_start "$name" "$what exited before it answered"
        fi
        if ((SECONDS - t0 >= START_DEADLINE)); then
            fail_start "$name" "$what did not answer within ${START_DEADLINE} s (pid $pid left running; '$0 stop $name' ends it)"
        fi
        sleep 0.25
    done
    log "$name up in $((SECONDS - t0)) s (pid $pid)"
}

fail_start() {
    local name=$1 msg=$2 logf="$STATE/$1.log" pf pid
    pf=$(pidfile "$name")
    pid=$(cat "$pf" 2>/dev/null || true)
    pid_alive "$pid" || rm -f "$pf"
    printf 'engines.sh: error: %s: %s; last lines of %s:\n' "$name" "$msg" "$logf" >&2
    tail -n 25 "$logf" 2>/dev/null | sed 's/^/    | /' >&2 || true
    exit 1
}

# dockerd's own config: gVisor registered as runtime `runsc` (when runsc is installed).
write_dockerd_config() {
    if [[ -x $RUNSC ]]; then
        local args
        args=$(printf '"%s", ' "${RUNSC_ARGS[@]}")
        printf '{\n  "runtimes": {\n    "%s": {"path": "%s", "runtimeArgs": [%s]}\n  }\n}\n' \
            "$RUNSC_NAME" "$RUNSC" "${args%, }" >"$DOCKERD_CONFIG"
    else
        echo '{}' >"$DOCKERD_CONFIG"
    fi
}

launch_dockerd() {
    write_dockerd_config
    # No default bridge, no iptables/forwarding/masquerading: containers use network none or host.
    # Its own config file: the runtimes, and nothing from a host's /etc/docker/daemon.json.
    launch dockerd dockerd --config-file "$DOCKERD_CONFIG" \
        --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        -H "unix://$DOCKER_SOCK"
    wait_until_up dockerd dockerd
}

start_dockerd() {
    if docker_up; then
        if [[ ! -x $RUNSC ]] || docker_has_runsc; then
            log "dockerd already answering on unix://$DOCKER_SOCK; left alone"
            return
        fi
        local pid
        pid=$(our_pid dockerd)
        if [[ -z $pid || $(readlink "/proc/$pid/exe" 2>/dev/null) != */dockerd ]]; then
            log "warning: the dockerd on unix://$DOCKER_SOCK has no '$RUNSC_NAME' runtime and this script did not start it; left alone (gVisor tests on Docker will skip, or fail where required)"
            return
        fi
        # A dockerd started by an earlier version of this script: restart it with the runtime.
        take_lock "restarting dockerd"
        log "dockerd (pid $pid) runs without the '$RUNSC_NAME' runtime; restarting it"
        stop_service dockerd
        launch_dockerd
        release_lock
        return
    fi
    command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run: $0 install)"
    command -v docker >/dev/null 2>&1 || die "the docker client is not installed (run: $0 install)"
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "warning: a dockerd process exists but does not answer on $DOCKER_SOCK; starting another may fail"
    fi
    launch_dockerd
}

start_podman() {
    if ping_socket "$PODMAN_SOCK"; then
        log "podman service already answering on unix://$PODMAN_SOCK; left alone"
        chmod 0660 "$PODMAN_SOCK"
        return
    fi
    command -v podman >/dev/null 2>&1 || die "podman is not installed (run: $0 install)"
    if ! grep -Eqs '^[[:space:]]*default_ulimits' "$CONTAINERS_CONF"; then
        die "$CONTAINERS_CONF lacks default_ulimits (run: $0 install first)"
    fi
    mkdir -p "$(dirname "$PODMAN_SOCK")"
    # A socket file left by a dead service would make the new one fail to bind.
    [[ -S $PODMAN_SOCK ]] && rm -f "$PODMAN_SOCK"
    launch podman podman system service --time=0 "unix://$PODMAN_SOCK"
    wait_until_up podman "podman system service"
    # podman.socket's systemd unit serves the rootful socket as 0660 root:root; a service
    # started by hand gets 0600. Match the unit, so the runner container (uid 1000 with the
    # socket's group added) can reach the engine the way it does on a systemd host.
    chmod 0660 "$PODMAN_SOCK"
}

start_registry() {
    if registry_up; then
        log "registry already answering on http://$REGISTRY_ADDR; left alone"
        return
    fi
    command -v docker-registry >/dev/null 2>&1 || die "docker-registry is not installed (run: $0 install)"
    # Fresh, empty storage for each registry this script starts; `stop` removes it.
    local storage="$STATE/registry-storage" conf="$STATE/registry.yml"
    rm -rf "$storage"
    mkdir -p "$storage"
    cat >"$conf" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  secret: roscoe-loopback-test-registry
EOF
    launch registry docker-registry serve "$conf"
    wait_until_up registry docker-registry
}

# Podman's Docker-compatible API ignores HostConfig.Runtime (and 4.3's libpod API ignores
# oci_runtime): the runtime is the service's. So gVisor on Podman is a service of its own, on
# the rootful store, whose every container runs under runsc --network=none.
start_podman_gvisor() {
    if ping_socket "$GVISOR_PODMAN_SOCK"; then
        log "podman-gvisor service already answering on unix://$GVISOR_PODMAN_SOCK; left alone"
        return
    fi
    [[ -x $RUNSC ]] || die "runsc is not installed (run: $0 install)"
    [[ -S $GVISOR_PODMAN_SOCK ]] && rm -f "$GVISOR_PODMAN_SOCK"
    mkdir -p "$(dirname "$GVISOR_PODMAN_SOCK")"
    local flags=() arg
    for arg in "${RUNSC_ARGS[@]}"; do flags+=(--runtime-flag "${arg#--}"); done
    launch podman-gvisor podman --runtime "$RUNSC_NAME" "${flags[@]}" \
        system service --time=0 "unix://$GVISOR_PODMAN_SOCK"
    wait_until_up podman-gvisor "podman system service (runtime $RUNSC_NAME)"
    chmod 0660 "$GVISOR_PODMAN_SOCK"
}

start_podman_rootless() {
    rootless_ids || die "user $ROOTLESS_USER does not exist (run: $0 install)"
    if ping_socket "$RL_SOCK"; then
        log "podman-rootless service already answering on unix://$RL_SOCK; left alone"
        return
    fi
    command -v podman >/dev/null 2>&1 || die "podman is not installed (run: $0 install)"
    # What a login session gives a user: /run/user/UID, theirs, mode 0700.
    install -d -o "$RL_UID" -g "$RL_GID" -m 0700 "$RL_RUNTIME_DIR" "$RL_RUNTIME_DIR/podman"
    [[ -S $RL_SOCK ]] && rm -f "$RL_SOCK"
    # Its working folder is the user's own (conmon may leave files there).
    install -d -o "$RL_UID" -g "$RL_GID" -m 0700 "$STATE/podman-rootless"
    rootless_exec
    LAUNCH_CWD=$STATE/podman-rootless launch podman-rootless \
        "${RL_EXEC[@]}" podman system service --time=0 "unix://$RL_SOCK"
    wait_until_up podman-rootless "podman system service as $ROOTLESS_USER"
}

start_moto() {
    if moto_up; then
        log "moto already answering on $S3_ENDPOINT; left alone"
        return
    fi
    [[ -x $MOTO_VENV/bin/moto_server ]] || die "moto is not installed in $MOTO_VENV (run: $0 install)"
    launch moto "$MOTO_VENV/bin/moto_server" -H "$MOTO_HOST" -p "$MOTO_PORT"
    wait_until_up moto moto_server
}

# The bucket (moto keeps it in memory: a new moto has none), with boto3 from moto's venv.
ensure_bucket() {
    AWS_ACCESS_KEY_ID=$S3_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_SECRET \
        "$MOTO_VENV/bin/python" - "$S3_ENDPOINT" "$S3_BUCKET" <<'EOF' || die "could not create bucket $S3_BUCKET at $S3_ENDPOINT"
import sys

import boto3

endpoint, bucket = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
    s3.create_bucket(Bucket=bucket)
    print(f"created bucket {bucket}", file=sys.stderr)
EOF
}

# Debian's udev rule makes /dev/fuse 0666; without udev it stays 0600, and a user who is not
# root cannot mount (fusermount needs to open it for them).
ensure_dev_fuse() {
    [[ -c /dev/fuse ]] || die "/dev/fuse is missing: FUSE is not available here"
    if [[ $(stat -c %a /dev/fuse) != 666 ]]; then
        chmod 0666 /dev/fuse
        log "made /dev/fuse 0666, as Debian's udev rule does"
    fi
}

start_bucket() {
    ensure_dev_fuse
    if bucket_up; then
        log "bucket already mounted at $BUCKET_DIR; left alone"
        return
    fi
    if mountpoint -q "$BUCKET_DIR" 2>/dev/null && ensure_bucket 2>/dev/null; then
        mkdir -p "$BUCKET_DIR/projects" "$BUCKET_DIR/Tools"
        log "bucket mounted at $BUCKET_DIR; made projects/ and Tools/ again"
        return
    fi
    command -v s3fs >/dev/null 2>&1 || die "s3fs is not installed (run: $0 install)"
    moto_up || die "moto does not answer at $S3_ENDPOINT (start it first: $0 start)"
    ensure_bucket
    if mountpoint -q "$BUCKET_DIR" 2>/dev/null || grep -qs " $BUCKET_DIR fuse" /proc/mounts; then
        # Our mount point; its s3fs died or lost its bucket (moto restarted).
        log "unmounting a stale mount at $BUCKET_DIR"
        fusermount -u "$BUCKET_DIR" 2>/dev/null || umount -l "$BUCKET_DIR"
    fi
    mkdir -p "$BUCKET_DIR"
    (umask 077 && printf '%s:%s\n' "$S3_KEY_ID" "$S3_SECRET" >"$S3_PASSWD_FILE")
    chmod 0600 "$S3_PASSWD_FILE"
    # allow_other: the engines' daemons (and container users) reach it; umask=0000: any uid
    # may write, as on a bucket mounted for a team.
    launch bucket s3fs "$S3_BUCKET" "$BUCKET_DIR" -f \
        -o "passwd_file=$S3_PASSWD_FILE,url=$S3_ENDPOINT,use_path_request_style,allow_other,umask=0000"
    local t0=$SECONDS pid
    pid=$(cat "$(pidfile bucket)")
    until mountpoint -q "$BUCKET_DIR"; do
        pid_alive "$pid" || fail_start bucket "s3fs exited before the mount appeared"
        ((SECONDS - t0 < START_DEADLINE)) || fail_start bucket "no mount at $BUCKET_DIR after ${START_DEADLINE} s"
        sleep 0.1
    done
    mkdir -p "$BUCKET_DIR/projects" "$BUCKET_DIR/Tools"
    wait_until_up bucket s3fs
}

cmd_start() {
    need_root start
    mkdir -p "$STATE"
    local t0=$SECONDS t1 name
    for name in "${SERVICES[@]}"; do
        t1=$SECONDS
        "start_${name//-/_}"
        log "$name: $((SECONDS - t1)) s"
    done
    log "all up after $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- stop
# Stop one service by the PID this script recorded; anything else is left alone.
stop_service() {
    local name=$1 pf pid i
    pf=$(pidfile "$name")
    [[ -f $pf ]] || return 0
    pid=$(cat "$pf")
    if [[ ! $pid =~ ^[0-9]+$ ]]; then
        log "ignoring $pf: not a pid"
        rm -f "$pf"
        return 0
    fi
    if ! pid_alive "$pid"; then
        log "$name (pid $pid) was not running"
        rm -f "$pf"
        after_stop "$name"
        return 0
    fi
    log "stopping $name (pid $pid)"
    if [[ $name == bucket ]]; then
        # s3fs ends by itself when its mount goes; a signal first would leave a dead mount point.
        if fusermount -u "$BUCKET_DIR" 2>/dev/null; then
            for ((i = 0; i < 20; i++)); do
                pid_alive "$pid" || break
                sleep 0.25
            done
        else
            log "fusermount -u $BUCKET_DIR failed; signalling s3fs"
        fi
    fi
    if pid_alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < STOP_GRACE * 4; i++)); do
        pid_alive "$pid" || break
        sleep 0.25
    done
    if pid_alive "$pid"; then
        log "$name (pid $pid) still running after ${STOP_GRACE} s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pf"
    after_stop "$name"
}

after_stop() {
    case $1 in
        registry) rm -rf "$STATE/registry-storage" ;;
        bucket) grep -qs " $BUCKET_DIR fuse" /proc/mounts && { umount -l "$BUCKET_DIR" || true; } ;;
        podman-rootless)
            # The service left Podman's pause process holding the user's namespaces: ours too.
            if rootless_ids; then
                local pause
                pause=$(cat "$RL_RUNTIME_DIR/libpod/tmp/pause.pid" 2>/dev/null || true)
                if [[ $pause =~ ^[0-9]+$ ]] && pid_alive "$pause" &&
                    [[ $(stat -c %u "/proc/$pause") == "$RL_UID" ]]; then
                    log "stopping $ROOTLESS_USER's podman pause process (pid $pause)"
                    kill -TERM "$pause" 2>/dev/null || true
                fi
            fi
            ;;
    esac
    return 0
}

cmd_stop() {
    need_root stop
    local name names=("$@") i
    ((${#names[@]})) || names=("${SERVICES[@]}")
    for name in "${names[@]}"; do
        case " ${SERVICES[*]} " in *" $name "*) ;; *) die "stop: unknown service '$name' (expected: ${SERVICES[*]})" ;; esac
    done
    take_lock "stopping ${names[*]}"
    # Dependents first: the bucket before moto, the engines last.
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        name=${SERVICES[i]}
        case " ${names[*]} " in *" $name "*) stop_service "$name" ;; esac
    done
    release_lock
    return 0
}

# ---------------------------------------------------------------- images for the test user
# Copy images from rootful Podman's store into the rootless test user's (podman save as root,
# podman load as the user), skipping those it already has with the same ID.
cmd_load_rootless() {
    need_root load-rootless
    (($#)) || die "load-rootless: name the images"
    rootless_ids || die "user $ROOTLESS_USER does not exist (run: $0 install)"
    install -d -o "$RL_UID" -g "$RL_GID" -m 0700 "$RL_RUNTIME_DIR"
    local ref id have old t0
    for ref in "$@"; do
        t0=$SECONDS
        id=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null) ||
            die "load-rootless: $ref is not in rootful Podman's store"
        have=$(as_rootless podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
        if [[ $have == "$id" ]]; then
            log "$ROOTLESS_USER already has $ref (${id:0:12})"
            continue
        fi
        if ! as_rootless podman image exists "$id" 2>/dev/null; then
            podman save --quiet "$id" | as_rootless podman load --quiet >/dev/null ||
                die "load-rootless: podman load of $ref as $ROOTLESS_USER failed"
        fi
        as_rootless podman tag "$id" "$ref"
        old=$have
        # A rebuilt image leaves the old one untagged: drop it unless a container uses it.
        if [[ -n $old ]]; then as_rootless podman image rm "$old" >/dev/null 2>&1 || true; fi
        log "loaded $ref (${id:0:12}) into $ROOTLESS_USER's store in $((SECONDS - t0)) s"
    done
}

# ---------------------------------------------------------------- status / env
where_of() {
    case $1 in
        dockerd) echo "unix://$DOCKER_SOCK" ;;
        podman) echo "unix://$PODMAN_SOCK" ;;
        registry) echo "http://$REGISTRY_ADDR" ;;
        podman-gvisor) echo "unix://$GVISOR_PODMAN_SOCK" ;;
        podman-rootless) if rootless_ids; then echo "unix://$RL_SOCK"; else echo "(no user $ROOTLESS_USER)"; fi ;;
        moto) echo "$S3_ENDPOINT" ;;
        bucket) echo "$BUCKET_DIR" ;;
    esac
}

cmd_status() {
    local all=0 name state note pf pid
    for name in "${SERVICES[@]}"; do
        if probe "$name"; then state=up; else state=down; all=3; fi
        note=""
        if [[ $name == dockerd && $state == up ]] && ! docker_has_runsc; then
            note=" (no '$RUNSC_NAME' runtime)"
        fi
        pf=$(pidfile "$name")
        if [[ -f $pf ]]; then
            pid=$(cat "$pf")
            if pid_alive "$pid"; then note+=" (pid $pid, started by engines.sh)"; else note+=" (stale pid file: $pid)"; fi
        fi
        printf '%-15s %-5s %s%s\n' "$name" "$state" "$(where_of "$name")" "$note"
    done
    return "$all"
}

cmd_env() {
    printf 'export ROSCOE_TEST_DOCKER_HOST=%q\n' "unix://$DOCKER_SOCK"
    printf 'export ROSCOE_TEST_PODMAN_HOST=%q\n' "unix://$PODMAN_SOCK"
    printf 'export ROSCOE_TEST_REGISTRY=%q\n' "$REGISTRY_ADDR"
    printf 'export ROSCOE_TEST_GVISOR_RUNTIME=%q\n' "$RUNSC_NAME"
    printf 'export ROSCOE_TEST_PODMAN_GVISOR_HOST=%q\n' "unix://$GVISOR_PODMAN_SOCK"
    if rootless_ids; then
        printf 'export ROSCOE_TEST_ROOTLESS_HOST=%q\n' "unix://$RL_SOCK"
        printf 'export ROSCOE_TEST_ROOTLESS_USER=%q\n' "$ROOTLESS_USER"
        printf 'export ROSCOE_TEST_ROOTLESS_UID=%q\n' "$RL_UID"
        printf 'export ROSCOE_TEST_ROOTLESS_GID=%q\n' "$RL_GID"
    fi
    printf 'export ROSCOE_TEST_BUCKET_DIR=%q\n' "$BUCKET_DIR"
    printf 'export ROSCOE_TEST_S3_ENDPOINT=%q\n' "$S3_ENDPOINT"
    printf 'export ROSCOE_TEST_S3_BUCKET=%q\n' "$S3_BUCKET"
    printf 'export ROSCOE_TEST_S3_ACCESS_KEY_ID=%q\n' "$S3_KEY_ID"
    printf 'export ROSCOE_TEST_S3_SECRET_ACCESS_KEY=%q\n' "$S3_SECRET"
}

usage() {
    cat <<EOF
usage: $0 {install|start|stop [NAME...]|status|env|load-rootless IMAGE...|services}
  install        install docker.io podman docker-registry mmdebstrap runsc uidmap slirp4netns
                 s3fs fuse3 if missing; write $CONTAINERS_CONF and $REGISTRIES_CONF; create
                 the test user $ROOTLESS_USER; moto and boto3 into $MOTO_VENV
  start          start each service that is not already answering: ${SERVICES[*]}
                 (a dockerd this script started without the '$RUNSC_NAME' runtime is restarted)
  stop           stop what 'start' started (PIDs in \$STATE/*.pid), nothing else;
                 optional NAMEs limit it to those
  status         one line per service; exit 0 when all are up, 3 otherwise
  env            exports for the tests: eval "\$($0 env)"
  load-rootless  copy images from rootful Podman into $ROOTLESS_USER's store
  services       the service names, in start order
state dir: $STATE (set ROSCOE_ENGINES_STATE to change); lock: $LOCK_FILE
EOF
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    load-rootless) shift; cmd_load_rootless "$@" ;;
    services) printf '%s\n' "${SERVICES[@]}" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
