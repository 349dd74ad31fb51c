# grpcurl: the gRPC command-line client used by the README examples and the
# gRPC system tests (reflection, health). Built with `go install` through the
# Go module proxy into $PW_CACHE/bin, once per version.
PW_GRPCURL_VERSION=${PW_GRPCURL_VERSION:-v1.9.4}
PW_GRPCURL_BIN="${PW_CACHE:-$HOME/.cache/plantwatch}/bin/grpcurl"

pw_setup_grpcurl() {
    local bin stamp go
    bin=$(dirname "$PW_GRPCURL_BIN")
    stamp="$bin/.grpcurl.version"
    if [ -x "$PW_GRPCURL_BIN" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PW_GRPCURL_VERSION" ]; then
        pw_info "grpcurl $PW_GRPCURL_VERSION already in $bin"
        return 0
    fi
    go=$(command -v go || echo /usr/local/go/bin/go)
    [ -x "$go" ] || { pw_info "grpcurl: Go toolchain not found"; return 1; }
    pw_info "grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$PW_GRPCURL_VERSION -> $bin"
    mkdir -p "$bin"
    GOBIN="$bin" GOTOOLCHAIN=local "$go" install \
        "github.com/fullstorydev/grpcurl/cmd/grpcurl@$PW_GRPCURL_VERSION" || return 1
    printf '%s\n' "$PW_GRPCURL_VERSION" >"$stamp"
}
