#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz (every fuzz_*.c) with clang
# (ASan + UBSan) and runs each from the committed seed corpus. New inputs go to
# a scratch corpus, never into the repository. Exits non-zero on any crash,
# leak, or input that exceeds the memory limits (a small ASan quarantine keeps
# the baseline RSS low enough for the RSS limit to catch memory bombs).
#   scripts/fuzz.sh [seconds-per-target]   bounded run (default 20; env PW_FUZZ_TIME)
#   scripts/fuzz.sh --long [runs]          each target for at least `runs`
#                                          executions (default 10000000)
# Memory limits per input (both modes): -rss_limit_mb (PW_FUZZ_RSS_MB, 512) and
# -malloc_limit_mb (PW_FUZZ_MALLOC_MB, 64): one input that makes a decoder
# allocate more than that is reported as a finding.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=time
LIMIT=${PW_FUZZ_TIME:-20}
if [ "${1:-}" = "--long" ]; then
    MODE=runs
    LIMIT=${2:-10000000}
elif [ -n "${1:-}" ]; then
    LIMIT=$1
fi
RSS_MB=${PW_FUZZ_RSS_MB:-512}
MALLOC_MB=${PW_FUZZ_MALLOC_MB:-64}
BUILD=${PW_FUZZ_BUILD:-${PW_BUILD:-$ROOT/build}-fuzz}
mapfile -t TARGETS < <(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//' | sort)
if [ -n "${PW_FUZZ_TARGETS:-}" ]; then
    read -r -a TARGETS <<<"$PW_FUZZ_TARGETS"
fi

echo "fuzz: building ${TARGETS[*]} with clang in $BUILD"
CC=clang cmake -S "$ROOT" -B "$BUILD" -DPW_FUZZ=ON -DPW_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for t in "${TARGETS[@]}"; do
    exe=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -1)
    mkdir -p "$WORK/$t" "$ROOT/tests/fuzz/corpus/$t"
    if [ "$MODE" = runs ]; then
        echo "fuzz: $t for $LIMIT executions (rss ${RSS_MB} MB, malloc ${MALLOC_MB} MB per input)"
        bound=(-runs="$LIMIT")
    else
        echo "fuzz: $t for ${LIMIT}s (rss ${RSS_MB} MB, malloc ${MALLOC_MB} MB per input)"
        bound=(-max_total_time="$LIMIT")
    fi
    ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1 \
        "$exe" "${bound[@]}" -timeout=10 -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$MALLOC_MB" \
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
