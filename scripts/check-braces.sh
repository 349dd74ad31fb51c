#!/usr/bin/env bash
# Fails when a tracked C source has an if/else/for/while/do body without
# braces (the house style), checked by clang-tidy's
# readability-braces-around-statements against the build's compile commands.
#   scripts/check-braces.sh BUILD_DIR        (default build/)
# `clang-tidy -p BUILD_DIR --checks=-*,readability-braces-around-statements
#  --fix FILE` adds the braces.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
cd "$ROOT"
[ -f "$BUILD/compile_commands.json" ] || { echo "braces: no $BUILD/compile_commands.json" >&2; exit 1; }
mapfile -t files < <(git ls-files 'src/*.c' 'tests/unit/*.c')
if clang-tidy -p "$BUILD" --quiet --checks='-*,readability-braces-around-statements' \
    --warnings-as-errors='readability-braces-around-statements' "${files[@]}" >"$BUILD/braces.log" 2>&1; then
    echo "braces: ${#files[@]} files clean"
else
    grep -E "error: statement should be inside braces" "$BUILD/braces.log" >&2 || tail -20 "$BUILD/braces.log" >&2
    echo "braces: add braces to the statements above" >&2
    exit 1
fi
