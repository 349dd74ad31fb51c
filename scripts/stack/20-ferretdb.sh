# shellcheck shell=bash
# The local document store: FerretDB 1.24 (MongoDB wire protocol, SQLite
# backend) on 127.0.0.1:27017, built through the Go module proxy.

PW_FERRETDB_VERSION=${PW_FERRETDB_VERSION:-v1.24.0}
PW_FERRETDB_BIN=$PW_CACHE/bin/ferretdb

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

pw_start_ferretdb() {
    [ -x "$PW_FERRETDB_BIN" ] || pw_die "FerretDB is not installed: run ./plantwatch setup"
    mkdir -p "$PW_STATE/ferretdb/data" "$PW_STATE/ferretdb/state"
    pw_info "starting FerretDB on 127.0.0.1:27017"
    pw_spawn ferretdb "$PW_STATE/logs/ferretdb.log" "$PW_FERRETDB_BIN" --handler=sqlite \
        --sqlite-url="file:$PW_STATE/ferretdb/data/" --state-dir="$PW_STATE/ferretdb/state" \
        --listen-addr=127.0.0.1:27017 --debug-addr=127.0.0.1:27018 --telemetry=disable \
        --log-level=WARN
    pw_wait_port 127.0.0.1 27017 60 ferretdb || pw_die "FerretDB did not start (log: $PW_STATE/logs/ferretdb.log)"
}

pw_stop_ferretdb() { pw_kill ferretdb TERM 20; }

pw_status_ferretdb() {
    local h=stopped pid=-
    if pw_alive ferretdb; then
        pid=$(pw_pid ferretdb)
        if (exec 3<>/dev/tcp/127.0.0.1/27017) 2>/dev/null; then h=ok; else h=starting; fi
    fi
    pw_status_line ferretdb "$pid" "127.0.0.1:27017 (MongoDB wire)" "$h"
}
