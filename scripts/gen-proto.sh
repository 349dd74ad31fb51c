#!/usr/bin/env bash
# Regenerates the protobuf-c sources in gen/ from proto/, or with --check proves
# that the committed gen/ is exactly what proto/ produces (run by the test suite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root/proto" && find . -name '*.proto' -print0 | sort -z | xargs -0 protoc -I. --c_out="$tmp")
if [ "${1:-}" = "--check" ]; then
    if diff -r "$tmp" "$root/gen"; then
        echo "gen/ matches proto/"
    else
        echo "gen/ is out of date: run scripts/gen-proto.sh and commit" >&2
        exit 1
    fi
else
    rm -rf "$root/gen"
    mkdir -p "$root/gen"
    cp -r "$tmp"/. "$root/gen/"
    echo "regenerated gen/ from proto/"
fi
