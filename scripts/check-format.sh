#!/usr/bin/env bash
# Fails when a tracked C source or header differs from what clang-format (with
# the repository's .clang-format) would write. Generated code in gen/ is exempt.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files 'src/*.[ch]' 'tests/*.[ch]')
if clang-format --dry-run --Werror "${files[@]}"; then
    echo "clang-format: ${#files[@]} files clean"
else
    echo "clang-format: run clang-format -i on the files above" >&2
    exit 1
fi
