# shellcheck shell=bash
# The local document store: FerretDB 1.24 (MongoDB wire protocol) on
# 127.0.0.1:27017 on its PostgreSQL backend, and a PostgreSQL cluster of the
# stack's own under $PW_STATE/postgres on 127.0.0.1:$PW_POSTGRES_PORT (never
# the system cluster). FerretDB is built through the Go module proxy,
# PostgreSQL comes from Debian. Passwords are created on first `up` in
# $PW_STATE/secrets; clients authenticate with PLAIN, which FerretDB hands to
# PostgreSQL (see scripts/stack/postgres/store.sql for roles and triggers).

PW_FERRETDB_VERSION=${PW_FERRETDB_VERSION:-v1.24.2}
PW_FERRETDB_BIN=$PW_CACHE/bin/ferretdb
PW_POSTGRES_PORT=${PW_POSTGRES_PORT:-55432}
PW_POSTGRES_DB=plantwatch
PW_STORE_ROLES=(admin consumer metrics)

pw_setup_ferretdb() {
    if [ -x "$PW_FERRETDB_BIN" ] && [ "$(cat "$PW_CACHE/bin/.ferretdb-version" 2>/dev/null)" = "$PW_FERRETDB_VERSION" ]; then
        pw_info "FerretDB $PW_FERRETDB_VERSION: cached in $PW_FERRETDB_BIN"
        return 0
    fi
    pw_info "FerretDB $PW_FERRETDB_VERSION: downloading the module and building (a few minutes the first time)"
    local dir src=$PW_CACHE/src/ferretdb
    dir=$(cd /tmp && go mod download -json "github.com/FerretDB/FerretDB@$PW_FERRETDB_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || pw_die "go mod download failed"
    rm -rf "$src" && mkdir -p "$PW_CACHE/src" "$PW_CACHE/bin"
    cp -r "$dir" "$src" && chmod -R u+w "$src"
    # release builds carry their version in build/version/version.txt
    echo "$PW_FERRETDB_VERSION" >"$src/build/version/version.txt"
    (cd "$src" && GOFLAGS=-buildvcs=false go build -o "$PW_FERRETDB_BIN" ./cmd/ferretdb) ||
        pw_die "building FerretDB failed"
    echo "$PW_FERRETDB_VERSION" >"$PW_CACHE/bin/.ferretdb-version"
}

# The newest PostgreSQL server installed from Debian (postgresql-NN).
pw_pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$d/postgres" ] || pw_die "PostgreSQL is not installed: run ./plantwatch setup"
    echo "$d"
}

# $PW_STATE/postgres holds the cluster. When ./plantwatch runs as root and
# Debian's "postgres" user cannot reach $PW_STATE (a checkout under a private
# home directory), the cluster lives in /var/lib/plantwatch/<id> instead and
# $PW_STATE/postgres is a symbolic link to it.
pw_pg_dir() {
    local dir=$PW_STATE/postgres
    if [ -L "$dir" ]; then
        readlink -f "$dir"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ] || [ -d "$dir/data" ] ||
        setpriv --reuid=postgres --regid=postgres --clear-groups -- test -x "$PW_STATE" 2>/dev/null; then
        echo "$dir"
        return 0
    fi
    local real
    real=/var/lib/plantwatch/$(printf '%s' "$PW_STATE" | sha256sum | cut -c1-12)
    # no link yet: whatever is there belonged to a state directory since removed
    rm -rf "$real"
    mkdir -p "$real" && chmod 755 /var/lib/plantwatch && ln -sfn "$real" "$dir"
    echo "$real"
}

# PostgreSQL refuses to run as root: then it runs as Debian's "postgres" user
# (setpriv execs, so the pid and process group stay the server's own).
pw_pg_owner_prefix() {
    if [ "$(id -u)" -eq 0 ]; then
        echo setpriv --reuid=postgres --regid=postgres --init-groups --
    fi
}

pw_pg_as_owner() {
    local prefix
    read -r -a prefix <<<"$(pw_pg_owner_prefix)"
    "${prefix[@]}" "$@"
}

pw_store_password() { cat "$PW_STATE/secrets/store-$1.password"; }

# Role names as in Kubernetes (k8s/base/mongodb/init): plantwatch-consumer, -metrics.
pw_store_user() {
    case $1 in admin) echo plantwatch-admin ;; *) echo "plantwatch-$1" ;; esac
}

# One password per role, and the MongoDB URI each client uses (PLAIN over
# loopback; FerretDB checks it against PostgreSQL). Written once, atomically.
pw_store_secrets() {
    local s=$PW_STATE/secrets role f
    pw_state_dirs
    for role in "${PW_STORE_ROLES[@]}"; do
        f=$s/store-$role.password
        if [ ! -s "$f" ]; then
            (umask 077 && openssl rand -hex 24 >"$f.tmp" && mv "$f.tmp" "$f")
        fi
        f=$s/$role-mongodb.uri
        (umask 077 && printf 'mongodb://%s:%s@127.0.0.1:27017/?authMechanism=PLAIN&authSource=%%24external\n' \
            "$(pw_store_user "$role")" "$(pw_store_password "$role")" >"$f.tmp" && mv "$f.tmp" "$f")
    done
}

# A state directory of the SQLite layout cannot be used (nothing is migrated).
pw_store_check_layout() {
    [ -d "$PW_STATE/ferretdb/data" ] || return 0
    pw_die "$PW_STATE holds a store of the previous layout (FerretDB on SQLite, in $PW_STATE/ferretdb/data).
  The store now lives in PostgreSQL and the old data is not migrated. To start afresh, run:
    ./plantwatch down && rm -rf '$PW_STATE/ferretdb'
  (or keep it and point PW_STATE at a new directory)"
}

pw_pg_init() {
    local dir bin pw
    dir=$(pw_pg_dir)
    [ -f "$dir/data/PG_VERSION" ] && return 0
    bin=$(pw_pg_bindir)
    pw_info "creating the store's PostgreSQL cluster in $dir/data"
    mkdir -p "$dir/"
    rm -rf "$dir/data" && mkdir -m 700 "$dir/data"
    pw=$dir/.initdb-pw
    (umask 077 && pw_store_password admin >"$pw")
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir" "$dir/data" "$pw"; fi
    pw_pg_as_owner "$bin/initdb" -D "$dir/data" -U "$(pw_store_user admin)" --pwfile="$pw" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >>"$PW_STATE/logs/postgres-init.log" 2>&1 || {
        rm -f "$pw"
        pw_die "initdb failed (see $PW_STATE/logs/postgres-init.log)"
    }
    rm -f "$pw"
}

pw_psql() {
    PGPASSWORD=$(pw_store_password admin) psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
        -p "$PW_POSTGRES_PORT" -U "$(pw_store_user admin)" "$@"
}

pw_pg_wait() {
    local i
    for ((i = 0; i < 300; i++)); do
        if pw_psql -d postgres -c 'SELECT 1' >/dev/null 2>&1; then return 0; fi
        pw_alive postgres || break
        sleep 0.2
    done
    pw_warn "postgres is not answering; last lines of its log:"
    tail -n 20 "$PW_STATE/logs/postgres.log" >&2 2>/dev/null
    return 1
}

# Roles, the database FerretDB keeps its databases in, triggers (idempotent).
pw_pg_provision() {
    if [ -z "$(pw_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PW_POSTGRES_DB'")" ]; then
        pw_psql -d postgres -c "CREATE DATABASE $PW_POSTGRES_DB" || pw_die "CREATE DATABASE failed"
    fi
    pw_psql -d "$PW_POSTGRES_DB" -f "$PW_ROOT/scripts/stack/postgres/store.sql" \
        -v consumer_role="$(pw_store_user consumer)" -v metrics_role="$(pw_store_user metrics)" \
        -v consumer_password="$(pw_store_password consumer)" \
        -v metrics_password="$(pw_store_password metrics)" -v dbname="$PW_POSTGRES_DB" \
        >>"$PW_STATE/logs/postgres-init.log" 2>&1 ||
        pw_die "provisioning the store failed (see $PW_STATE/logs/postgres-init.log)"
}

pw_start_postgres() {
    local dir bin
    dir=$(pw_pg_dir)
    bin=$(pw_pg_bindir)
    pw_pg_init
    pw_info "starting PostgreSQL on 127.0.0.1:$PW_POSTGRES_PORT ($dir/data)"
    # -c settings: loopback only, no Unix socket; custom plans so FerretDB's
    # parameterised filters (_jsonb -> $1 @> $2) can use the GIN indexes;
    # checkpoints far apart and compressed WAL, because inserts into large
    # random-key indexes would otherwise write a full page image per insert
    # after every checkpoint
    local prefix
    read -r -a prefix <<<"$(pw_pg_owner_prefix)"
    pw_spawn postgres "$PW_STATE/logs/postgres.log" "${prefix[@]}" "$bin/postgres" -D "$dir/data" \
        -c listen_addresses=127.0.0.1 -c port="$PW_POSTGRES_PORT" -c unix_socket_directories= \
        -c max_connections=400 -c shared_buffers="${PW_POSTGRES_SHARED_BUFFERS:-256MB}" \
        -c plan_cache_mode=force_custom_plan -c logging_collector=off \
        -c max_wal_size="${PW_POSTGRES_MAX_WAL_SIZE:-4GB}" -c checkpoint_timeout=15min \
        -c checkpoint_completion_target=0.9 -c wal_compression=lz4 \
        -c log_min_messages=warning -c log_min_error_statement=panic \
        -c log_line_prefix='%m [%p] %q%u@%d '
    pw_pg_wait || pw_die "PostgreSQL did not start (log: $PW_STATE/logs/postgres.log)"
    pw_pg_provision
}

pw_start_ferretdb() {
    [ -x "$PW_FERRETDB_BIN" ] || pw_die "FerretDB is not installed: run ./plantwatch setup"
    mkdir -p "$PW_STATE/ferretdb-state"
    pw_info "starting FerretDB $PW_FERRETDB_VERSION on 127.0.0.1:27017 (PostgreSQL backend)"
    # no credentials here: each client's PLAIN user and password open its own pool
    pw_spawn ferretdb "$PW_STATE/logs/ferretdb.log" "$PW_FERRETDB_BIN" --handler=postgresql \
        --postgresql-url="postgres://127.0.0.1:$PW_POSTGRES_PORT/$PW_POSTGRES_DB?pool_max_conns=100" \
        --state-dir="$PW_STATE/ferretdb-state" --listen-addr=127.0.0.1:27017 \
        --debug-addr=127.0.0.1:27018 --telemetry=disable --log-level=warn
    pw_wait_port 127.0.0.1 27017 60 ferretdb || pw_die "FerretDB did not start (log: $PW_STATE/logs/ferretdb.log)"
}

pw_start_store() {
    pw_store_check_layout
    pw_store_secrets
    pw_start_postgres
    pw_start_ferretdb
}

pw_stop_ferretdb() { pw_kill ferretdb TERM 20; }
# SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for clients to leave)
pw_stop_postgres() { pw_kill postgres INT 60; }

pw_stop_store() {
    pw_stop_ferretdb
    pw_stop_postgres
}

pw_status_store() {
    local h=stopped pid=-
    if pw_alive postgres; then
        pid=$(pw_pid postgres)
        if pw_psql -d postgres -c 'SELECT 1' >/dev/null 2>&1; then h=ok; else h=starting; fi
    fi
    pw_status_line postgres "$pid" "127.0.0.1:$PW_POSTGRES_PORT (PostgreSQL)" "$h"
    h=stopped pid=-
    if pw_alive ferretdb; then
        pid=$(pw_pid ferretdb)
        if (exec 3<>/dev/tcp/127.0.0.1/27017) 2>/dev/null; then h=ok; else h=starting; fi
    fi
    pw_status_line ferretdb "$pid" "127.0.0.1:27017 (MongoDB wire)" "$h"
}
