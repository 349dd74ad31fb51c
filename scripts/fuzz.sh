#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang (ASan + UBSan) and runs
# each for a bounded time from the committed seed corpus. New inputs go to a
# scratch corpus, never into the repository. Exits non-zero on any crash.
#   scripts/fuzz.sh [seconds-per-target]     (default 30; env PW_FUZZ_TIME)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=${1:-${PW_FUZZ_TIME:-30}}
BUILD=${PW_FUZZ_BUILD:-${PW_BUILD:-$ROOT/build}-fuzz}
TARGETS=(fuzz_json_ingest fuzz_pb_ingest)

echo "fuzz: building ${TARGETS[*]} with clang in $BUILD"
CC=clang cmake -S "$ROOT" -B "$BUILD" -DPW_FUZZ=ON -DPW_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for t in "${TARGETS[@]}"; do
    exe=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -1)
    mkdir -p "$WORK/$t"
    echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$exe" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$WORK/$t-" \
        "$WORK/$t" "$ROOT/tests/fuzz/corpus/$t" 2>"$WORK/$t.log" || {
        tail -60 "$WORK/$t.log"
        mkdir -p "$ROOT/.plantwatch/fuzz"
        cp "$WORK/$t"-* "$ROOT/.plantwatch/fuzz/" 2>/dev/null || true
        echo "fuzz: $t FAILED (reproducer saved under .plantwatch/fuzz/)" >&2
        exit 1
    }
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$WORK/$t.log" | tr '\n' ' '
    echo
done
echo "fuzz: all targets ran clean"
