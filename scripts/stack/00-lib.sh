# shellcheck shell=bash
# Shared helpers for ./plantwatch: paths, output, process supervision and
# readiness waits. Every scripts/stack/*.sh is sourced after this file.

PW_ROOT=${PW_ROOT:?}
PW_STATE=${PW_STATE:-$PW_ROOT/.plantwatch}
PW_CACHE=${PW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/plantwatch}
PW_BUILD=${PW_BUILD:-$PW_ROOT/build}
PW_VENV=${PW_VENV:-$PW_CACHE/venv}
export PW_ROOT PW_STATE PW_CACHE PW_BUILD PW_VENV

if [ -t 1 ]; then PW_C_ON=$'\033[1;34m' PW_C_WARN=$'\033[1;33m' PW_C_ERR=$'\033[1;31m' PW_C_OFF=$'\033[0m'
else PW_C_ON='' PW_C_WARN='' PW_C_ERR='' PW_C_OFF=''; fi

pw_info() { printf '%s==>%s %s\n' "$PW_C_ON" "$PW_C_OFF" "$*"; }
pw_warn() { printf '%swarning:%s %s\n' "$PW_C_WARN" "$PW_C_OFF" "$*" >&2; }
pw_die() { printf '%serror:%s %s\n' "$PW_C_ERR" "$PW_C_OFF" "$*" >&2; exit 1; }

pw_state_dirs() {
    mkdir -p "$PW_STATE"/{pids,logs,secrets,artifacts} && chmod 700 "$PW_STATE/secrets"
}

# pw_spawn NAME LOGFILE CMD... — start CMD in its own session (process group),
# append its output to LOGFILE, remember its pid.
pw_spawn() {
    local name=$1 log=$2
    shift 2
    pw_state_dirs
    if pw_alive "$name"; then
        pw_info "$name already running (pid $(pw_pid "$name"))"
        return 0
    fi
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$PW_STATE/pids/$name.pid"
}

pw_pid() { cat "$PW_STATE/pids/$1.pid" 2>/dev/null; }

pw_alive() {
    local pid
    pid=$(pw_pid "$1") || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# pw_kill NAME [SIGNAL] [GRACE_SECONDS] — signal the process group, wait, then KILL.
pw_kill() {
    local name=$1 sig=${2:-TERM} grace=${3:-20} pid i
    pid=$(pw_pid "$name") || return 0
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null
        for ((i = 0; i < grace * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            pw_warn "$name did not stop within ${grace}s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$PW_STATE/pids/$name.pid"
}

# pw_wait_port HOST PORT TIMEOUT_S [NAME] — wait until a TCP port accepts.
pw_wait_port() {
    local host=$1 port=$2 timeout=$3 name=${4:-} i
    for ((i = 0; i < timeout * 5; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        if [ -n "$name" ] && ! pw_alive "$name"; then
            pw_warn "$name exited; last lines of its log:"
            tail -n 20 "$PW_STATE/logs/$name.log" >&2 2>/dev/null
            return 1
        fi
        sleep 0.2
    done
    return 1
}

# pw_wait_http URL TIMEOUT_S [NAME] — wait until URL answers 2xx.
pw_wait_http() {
    local url=$1 timeout=$2 name=${3:-} i
    for ((i = 0; i < timeout * 4; i++)); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
        if [ -n "$name" ] && ! pw_alive "$name"; then
            pw_warn "$name exited; last lines of its log:"
            tail -n 20 "$PW_STATE/logs/$name.log" >&2 2>/dev/null
            return 1
        fi
        sleep 0.25
    done
    return 1
}

# pw_http_health URL — "ok" / "down" for status tables.
pw_http_health() {
    if curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; then echo ok; else echo down; fi
}

pw_status_line() { printf '  %-12s %-8s %-38s %s\n' "$1" "$2" "$3" "$4"; }

pw_python() { "$PW_VENV/bin/python" "$@"; }

# Loads the generated Kafka credentials into the environment.
pw_load_kafka_secrets() {
    [ -f "$PW_STATE/secrets/kafka-users.env" ] || pw_die "no Kafka credentials yet: run ./plantwatch up"
    # shellcheck disable=SC1091
    . "$PW_STATE/secrets/kafka-users.env"
}
