#!/usr/bin/env bash
# Install, start, stop and inspect the container engines roscoe's tests use:
# Docker (dockerd, no bridge), Podman (rootful API service) and a registry on loopback.
#
#   scripts/engines.sh install   # apt packages + /etc/containers config (idempotent)
#   scripts/engines.sh start     # start whatever is not already answering
#   scripts/engines.sh status    # one line per service; exit 0 if all are up, 3 if not
#   scripts/engines.sh env       # shell exports: eval "$(scripts/engines.sh env)"
#   scripts/engines.sh stop [NAME...]  # stop only what `start` started (PIDs in $STATE/*.pid);
#                                      # NAME: dockerd, podman, registry (default: all three)
#
# State (logs, pid files, registry config and storage) lives in $ROSCOE_ENGINES_STATE,
# default /tmp/roscoe-engines. Network: loopback only. dockerd runs without its bridge,
# the registry listens on 127.0.0.1 only.
set -euo pipefail

STATE=${ROSCOE_ENGINES_STATE:-/tmp/roscoe-engines}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd) # absolute: daemons are launched from inside it
DOCKER_SOCK=/var/run/docker.sock
PODMAN_SOCK=/run/podman/podman.sock
REGISTRY_ADDR=127.0.0.1:5000
START_DEADLINE=${ROSCOE_ENGINES_START_DEADLINE:-60}
STOP_GRACE=15
SERVICES=(dockerd podman registry)

log() { printf '[engines %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'engines.sh: error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ ${EUID:-$(id -u)} -eq 0 ]] || die "'$1' must run as root (try: sudo $0 $1)"
}

# ---------------------------------------------------------------- probes
docker_up() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 10 docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1
}

podman_up() {
    [[ -S $PODMAN_SOCK ]] || return 1
    local out
    out=$(curl -fsS --max-time 5 --noproxy '*' --unix-socket "$PODMAN_SOCK" http://d/_ping 2>/dev/null) || return 1
    [[ $out == OK ]]
}

registry_up() {
    curl -fsS --max-time 5 --noproxy '*' -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null
}

probe() {
    case $1 in
        dockerd) docker_up ;;
        podman) podman_up ;;
        registry) registry_up ;;
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

cmd_install() {
    need_root install
    local missing=() bin
    for bin in dockerd podman docker-registry mmdebstrap curl; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}; installing packages (about a minute)"
        local t0=$SECONDS
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        apt-get -o DPkg::Lock::Timeout=600 update -q ||
            die "apt-get update failed"
        apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            docker.io podman docker-registry mmdebstrap curl ||
            die "apt-get install docker.io podman docker-registry mmdebstrap failed"
        log "packages installed in $((SECONDS - t0)) s"
    else
        log "dockerd, podman, docker-registry, mmdebstrap and curl are installed"
    fi
    # Both files are read by podman's service when it starts: written before `start`.
    write_containers_conf
    write_registries_conf
    if ((CONF_CHANGED)) && podman_up; then
        log "note: the podman service is running with the old config; restart it ($0 stop podman, if it started it; then $0 start)"
    fi
}

# ---------------------------------------------------------------- start
pidfile() { echo "$STATE/$1.pid"; }

# Launch "$@" detached (own session, stdin from /dev/null, output to $STATE/<name>.log) and
# record its exact PID in $STATE/<name>.pid (the child writes its own PID, then execs).
launch() {
    local name=$1
    shift
    local pf logf
    pf=$(pidfile "$name")
    logf="$STATE/$name.log"
    rm -f "$pf" "$pf.tmp"
    : >"$logf"
    # From the state folder, not the caller's: daemons leave files in their working folder
    # (Podman's container monitor writes an `oom` marker there when a container is OOM-killed).
    # shellcheck disable=SC2016
    (cd "$STATE" && setsid -f bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1"; shift; exec "$@"' \
        _ "$pf" "$@" </dev/null >>"$logf" 2>&1)
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pf ]] && break
        sleep 0.1
    done
    [[ -s $pf ]] || die "$name: could not launch $1 (no pid recorded); log: $logf"
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

wait_until_up() {
    local name=$1 what=$2 t0=$SECONDS pid
    pid=$(cat "$(pidfile "$name")")
    while ! probe "$name"; do
        if ! pid_alive "$pid"; then
            fail_start "$name" "$what exited before it answered"
        fi
        if ((SECONDS - t0 >= START_DEADLINE)); then
            fail_start "$name" "$what did not answer within ${START_DEADLINE} s (pid $pid left running; '$0 stop' ends it)"
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

start_dockerd() {
    if docker_up; then
        log "dockerd already answering on unix://$DOCKER_SOCK; left alone"
        return
    fi
    command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run: $0 install)"
    command -v docker >/dev/null 2>&1 || die "the docker client is not installed (run: $0 install)"
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "warning: a dockerd process exists but does not answer on $DOCKER_SOCK; starting another may fail"
    fi
    # No default bridge, no iptables/forwarding/masquerading: containers use network none or host.
    launch dockerd dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        -H "unix://$DOCKER_SOCK"
    wait_until_up dockerd dockerd
}

start_podman() {
    if podman_up; then
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

cmd_start() {
    need_root start
    mkdir -p "$STATE"
    local t0=$SECONDS
    start_dockerd
    start_podman
    start_registry
    log "all up after $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- stop
cmd_stop() {
    need_root stop
    local name pf pid i names=("$@")
    ((${#names[@]})) || names=("${SERVICES[@]}")
    for name in "${names[@]}"; do
        case " ${SERVICES[*]} " in *" $name "*) ;; *) die "stop: unknown service '$name' (expected: ${SERVICES[*]})" ;; esac
        pf=$(pidfile "$name")
        [[ -f $pf ]] || continue
        pid=$(cat "$pf")
        if [[ ! $pid =~ ^[0-9]+$ ]]; then
            log "ignoring $pf: not a pid"
            rm -f "$pf"
            continue
        fi
        if ! pid_alive "$pid"; then
            log "$name (pid $pid) was not running"
            rm -f "$pf"
            [[ $name == registry ]] && rm -rf "$STATE/registry-storage"
            continue
        fi
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
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
        [[ $name == registry ]] && rm -rf "$STATE/registry-storage"
    done
    return 0
}

# ---------------------------------------------------------------- status / env
cmd_status() {
    local all=0 name state where note pf pid
    for name in "${SERVICES[@]}"; do
        case $name in
            dockerd) where="unix://$DOCKER_SOCK" ;;
            podman) where="unix://$PODMAN_SOCK" ;;
            registry) where="http://$REGISTRY_ADDR" ;;
        esac
        if probe "$name"; then state=up; else state=down; all=3; fi
        note=""
        pf=$(pidfile "$name")
        if [[ -f $pf ]]; then
            pid=$(cat "$pf")
            if pid_alive "$pid"; then note=" (pid $pid, started by engines.sh)"; else note=" (stale pid file: $pid)"; fi
        fi
        printf '%-9s %-5s %s%s\n' "$name" "$state" "$where" "$note"
    done
    return "$all"
}

cmd_env() {
    printf 'export ROSCOE_TEST_DOCKER_HOST=%q\n' "unix://$DOCKER_SOCK"
    printf 'export ROSCOE_TEST_PODMAN_HOST=%q\n' "unix://$PODMAN_SOCK"
    printf 'export ROSCOE_TEST_REGISTRY=%q\n' "$REGISTRY_ADDR"
}

usage() {
    cat <<EOF
usage: $0 {install|start|stop [NAME...]|status|env}
  install  install docker.io podman docker-registry mmdebstrap if missing; write
           $CONTAINERS_CONF and $REGISTRIES_CONF
  start    start dockerd (no bridge), the podman API service and a registry on
           $REGISTRY_ADDR, each only if not already answering
  stop     stop what 'start' started (PIDs in \$STATE/*.pid), nothing else;
           optional NAMEs (${SERVICES[*]}) limit it to those
  status   one line per service; exit 0 when all are up, 3 otherwise
  env      exports for the tests: eval "\$($0 env)"
state dir: $STATE (set ROSCOE_ENGINES_STATE to change)
EOF
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
