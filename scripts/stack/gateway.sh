# shellcheck shell=bash
# Local edge gateway: nginx rendered from kong/kong.yaml (scripts/gateway/render.py)
# plus the local credentials in $PW_STATE/secrets. This file owns the gateway's
# setup, start/stop/status/reload, its secrets and `./plantwatch keys`. Sourced by
# ./plantwatch after scripts/stack/00-lib.sh (pw_info, pw_die, pw_spawn, ...).
#
# $PW_STATE/secrets (all mode 0600):
#   gateway-credentials  the gateway's consumers: `<name> <group> sha256:<hex>` (no key)
#   gateway-secret       the shared secret the gateway sends as X-Gateway-Token;
#                        the producers read it (PW_GATEWAY_SECRET_FILE)
#   gateway-keys         the local sensors' keys, `<name> <key>` (what the simulator,
#                        the tests and a sensor hold; the gateway never reads it)
#   read-keys            the local readers' keys (dashboard), same format

PW_GATEWAY_REST_PORT=8000
PW_GATEWAY_GRPC_PORT=9080

pw_gateway_dir() { echo "$PW_STATE/nginx"; }
pw_gateway_keys_file() { echo "$PW_STATE/secrets/gateway-keys"; }
pw_gateway_read_keys_file() { echo "$PW_STATE/secrets/read-keys"; }
pw_gateway_credentials_file() { echo "$PW_STATE/secrets/gateway-credentials"; }
pw_gateway_secret_file() { echo "$PW_STATE/secrets/gateway-secret"; }

pw_gateway_python() {
    if [ -x "$PW_VENV/bin/python" ]; then
        "$PW_VENV/bin/python" "$@"
    else
        python3 "$@"
    fi
}

# nginx with the Lua module (Debian). The renderer needs PyYAML from the test
# venv. decK is not installed: the Go module proxy does not serve it, so the
# schema check is scripts/gateway/kongconf.py; a decK found on PATH or in
# $PW_CACHE/bin is used in addition by pw_test_gateway.
pw_setup_gateway() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || missing+=(nginx)
    [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing+=(libnginx-mod-http-lua)
    if [ ${#missing[@]} -gt 0 ]; then
        pw_info "gateway: installing ${missing[*]} (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
            pw_die "gateway: apt-get install ${missing[*]} failed"
    fi
}

# pw_gateway_ring_init FILE TITLE NAME...: a local clients' key ring with a
# fresh key per NAME, if FILE does not exist yet.
pw_gateway_ring_init() {
    local file=$1 title=$2 name
    shift 2
    [ -s "$file" ] && return 0
    (
        umask 077
        {
            echo "# $title: <consumer-name> <api-key> (the gateway keeps only their digests)"
            for name in "$@"; do
                echo "$name $(pw_gateway_new_key)"
            done
        } >"$file.tmp" && mv "$file.tmp" "$file"
    )
    pw_info "gateway: created API keys for $* in $file"
}

# The gateway's credentials from the local key rings (sensors: group ingest,
# readers: group read), when the credentials file does not exist yet.
pw_gateway_keys_init() {
    local file creds
    file=$(pw_gateway_keys_file)
    creds=$(pw_gateway_credentials_file)
    mkdir -p "$(dirname "$file")"
    chmod 700 "$(dirname "$file")"
    pw_gateway_ring_init "$file" "plantwatch sensors" sensor-a sensor-b sensor-c
    pw_gateway_ring_init "$(pw_gateway_read_keys_file)" "plantwatch readers" dashboard
    [ -s "$creds" ] && return 0
    (
        umask 077
        {
            echo "# plantwatch gateway consumers: <consumer-name> <group> sha256:<hex digest of the key>"
            local name key
            while read -r name key; do
                case "$name" in '' | '#'*) continue ;; esac
                echo "$name ingest $(pw_gateway_key_hash "$key")"
            done <"$file"
            while read -r name key; do
                case "$name" in '' | '#'*) continue ;; esac
                echo "$name read $(pw_gateway_key_hash "$key")"
            done <"$(pw_gateway_read_keys_file)"
        } >"$creds.tmp" && mv "$creds.tmp" "$creds"
    )
}

# 192 random bits as 48 hex digits.
pw_gateway_new_key() {
    openssl rand -hex 24
}

pw_gateway_key_hash() {
    printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -c1-64)"
}

# The gateway secret (256 random bits), created on first use; prints its path.
pw_gateway_secret_init() {
    local file
    file=$(pw_gateway_secret_file)
    if [ ! -s "$file" ]; then
        mkdir -p "$(dirname "$file")"
        chmod 700 "$(dirname "$file")"
        (umask 077 && openssl rand -hex 32 >"$file.$$" && mv -f "$file.$$" "$file")
    fi
    echo "$file"
}

# Renders kong/kong.yaml + keys into $PW_STATE/nginx/nginx.conf and checks it with nginx -t.
pw_gateway_render() {
    local dir conf
    dir=$(pw_gateway_dir)
    conf="$dir/nginx.conf"
    mkdir -p "$dir/logs" "$dir/tmp"
    pw_gateway_keys_init
    pw_gateway_secret_init >/dev/null
    pw_gateway_python "$PW_ROOT/scripts/gateway/render.py" --state "$PW_STATE" --out "$conf.next" ||
        pw_die "gateway: rendering kong/kong.yaml failed"
    if ! nginx -q -t -p "$dir" -c "$conf.next" -e "$dir/logs/error.log" 2>"$dir/logs/config-test.log"; then
        cat "$dir/logs/config-test.log" >&2
        rm -f "$conf.next"
        pw_die "gateway: rendered nginx configuration is invalid"
    fi
    mv "$conf.next" "$conf"
}

pw_gateway_pid() {
    local pidfile
    pidfile="$(pw_gateway_dir)/nginx.pid"
    [ -s "$pidfile" ] || return 1
    local pid
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

pw_start_gateway() {
    local dir
    dir=$(pw_gateway_dir)
    if pw_gateway_pid >/dev/null; then
        pw_info "gateway: already running, reloading its configuration"
        pw_reload_gateway
        return
    fi
    pw_gateway_render
    pw_info "gateway: starting nginx on 127.0.0.1:$PW_GATEWAY_REST_PORT (REST) and 127.0.0.1:$PW_GATEWAY_GRPC_PORT (gRPC h2c)"
    pw_spawn gateway "$PW_STATE/logs/gateway.log" \
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
    pw_wait_port 127.0.0.1 "$PW_GATEWAY_REST_PORT" 30 gateway || pw_die "gateway: port $PW_GATEWAY_REST_PORT did not open (see $dir/logs/error.log)"
    pw_wait_port 127.0.0.1 "$PW_GATEWAY_GRPC_PORT" 30 gateway || pw_die "gateway: port $PW_GATEWAY_GRPC_PORT did not open (see $dir/logs/error.log)"
    pw_info "gateway: ready"
}

pw_stop_gateway() {
    local dir pid
    dir=$(pw_gateway_dir)
    if pid=$(pw_gateway_pid); then
        # QUIT: graceful shutdown, workers finish the requests in flight.
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -s quit 2>/dev/null || kill -QUIT "$pid"
        local i
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    pw_kill gateway
}

# One line: name, pid, ports, health (healthy = nginx answers Kong's "no Route"
# 404 on an unknown REST path and the gRPC port accepts connections).
pw_status_gateway() {
    local health="down" code pid
    if pid=$(pw_gateway_pid); then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PW_GATEWAY_REST_PORT/" || true)
        if [ "$code" = "404" ] && pw_gateway_port_open "$PW_GATEWAY_GRPC_PORT"; then
            health="healthy"
        else
            health="unhealthy"
        fi
    fi
    pw_status_line gateway "${pid:--}" "127.0.0.1:$PW_GATEWAY_REST_PORT (REST), :$PW_GATEWAY_GRPC_PORT (gRPC)" "$health"
}

pw_gateway_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Re-render and reload: nginx starts new workers with the new configuration and
# lets the old ones finish their connections (no request is dropped); the
# rate-limit counters live in shared memory and survive the reload.
pw_reload_gateway() {
    local dir
    dir=$(pw_gateway_dir)
    pw_gateway_render
    local master before
    master=$(pw_gateway_pid) || return 0
    before=$(pw_gateway_workers "$master")
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -s reload ||
        pw_die "gateway: reload failed"
    # The signal returns at once; wait until only new workers accept connections.
    local i w old
    for i in $(seq 1 100); do
        old=0
        for w in $(pw_gateway_workers "$master"); do
            case " $before " in *" $w "*) old=1 ;; esac
        done
        [ "$old" = 0 ] && break
        sleep 0.1
    done
    [ "$old" = 0 ] || pw_die "gateway: reload did not take effect (see $dir/logs/error.log)"
    pw_info "gateway: configuration reloaded"
}

# Worker processes of the master that still accept connections.
pw_gateway_workers() {
    ps -o pid=,args= --ppid "$1" 2>/dev/null | awk '/worker process/ && !/shutting down/ { print $1 }' | tr '\n' ' '
}

pw_gateway_key_mask() {
    local key=$1
    echo "${key:0:4}…${key: -2}"
}

# pw_gateway_has FILE FIELD VALUE: a non-comment line whose FIELD equals VALUE.
pw_gateway_has() {
    awk -v f="$2" -v v="$3" '$1 !~ /^#/ && $f == v { found = 1 } END { exit !found }' "$1" 2>/dev/null
}

# pw_gateway_drop FILE NAME: the file without NAME's line.
pw_gateway_drop() {
    [ -f "$1" ] || return 0
    (umask 077 && awk -v n="$2" '$1 != n' "$1" >"$1.tmp") && mv "$1.tmp" "$1"
}

pw_keys_add() {
    local name="" key="" group=ingest ring arg
    for arg in "$@"; do
        case "$arg" in
        --read) group=read ;;
        -*) pw_die "keys add: unknown option '$arg' (usage: plantwatch keys add NAME [KEY] [--read])" ;;
        *) if [ -z "$name" ]; then name=$arg; elif [ -z "$key" ]; then key=$arg; else
            pw_die "usage: plantwatch keys add NAME [KEY] [--read]"; fi ;;
        esac
    done
    [ -n "$name" ] || pw_die "usage: plantwatch keys add NAME [KEY] [--read]"
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || pw_die "keys: invalid consumer name '$name'"
    [ -n "$key" ] || key=$(pw_gateway_new_key)
    [[ $key =~ ^[A-Za-z0-9._~+/=-]{32,256}$ ]] ||
        pw_die "keys: a key needs at least 128 bits: 32-256 of A-Z a-z 0-9 . _ ~ + / = - (omit KEY to generate one)"
    ring=$(pw_gateway_keys_file)
    [ "$group" = read ] && ring=$(pw_gateway_read_keys_file)
    pw_gateway_keys_init
    local creds hash
    creds=$(pw_gateway_credentials_file)
    hash=$(pw_gateway_key_hash "$key")
    (
        flock 9
        pw_gateway_has "$creds" 1 "$name" && pw_die "keys: consumer '$name' already exists (revoke it first)"
        pw_gateway_has "$creds" 3 "$hash" && pw_die "keys: that key is already in use"
        (umask 077 && echo "$name $group $hash" >>"$creds" && echo "$name $key" >>"$ring")
    ) 9>>"$creds.lock" || exit 1
    pw_keys_apply
    echo "$key"
}

# ./plantwatch keys add NAME [KEY] [--read] | list | revoke NAME
pw_keys_cmd() {
    local action=${1:-list}
    shift || true
    local creds
    creds=$(pw_gateway_credentials_file)
    case "$action" in
    add) pw_keys_add "$@" ;;
    list)
        pw_gateway_keys_init
        local name group hash
        while read -r name group hash; do
            case "$name" in '' | '#'*) continue ;; esac
            printf '%-24s %-8s %s…\n' "$name" "$group" "${hash:0:15}"
        done <"$creds"
        ;;
    revoke)
        local name=${1:-}
        [ -n "$name" ] || pw_die "usage: plantwatch keys revoke NAME"
        (
            flock 9
            pw_gateway_has "$creds" 1 "$name" || pw_die "keys: no consumer '$name'"
            pw_gateway_drop "$creds" "$name"
            pw_gateway_drop "$(pw_gateway_keys_file)" "$name"
            pw_gateway_drop "$(pw_gateway_read_keys_file)" "$name"
        ) 9>>"$creds.lock" || exit 1
        pw_keys_apply
        pw_info "keys: revoked '$name'"
        ;;
    *)
        pw_die "usage: plantwatch keys add NAME [KEY] [--read] | list | revoke NAME"
        ;;
    esac
}

# A running gateway picks up key changes at once; otherwise at the next `up`.
pw_keys_apply() {
    if pw_gateway_pid >/dev/null; then
        pw_reload_gateway >&2
    fi
}

# Offline checks run by ./plantwatch test: schema of kong.yaml and a render.
pw_test_gateway() {
    pw_gateway_python "$PW_ROOT/scripts/gateway/kongconf.py" "$PW_ROOT/kong/kong.yaml" || return 1
    local deck
    deck=$(PATH="$PW_CACHE/bin:$PATH" command -v deck || true)
    if [ -n "$deck" ]; then
        "$deck" file validate "$PW_ROOT/kong/kong.yaml" || return 1
    fi
}
