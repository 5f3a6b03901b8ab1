#!/usr/bin/env bash
# Builds LiteStage (Release) in build-bench/ and runs the engine benchmark.
# Rows go to stdout (tab-separated key=value) and to bench/results-HOST.tsv.
# Extra arguments are passed to bench_engine (e.g. --only tinyllama --reps 5).
# The benchmark is not a test: run it on an otherwise idle machine (the rows
# carry the load average and CPU time per token so noisy runs are visible).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(dirname "$here")"
build="${LS_BENCH_BUILD:-$src/build-bench}"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLS_BUILD_TESTS=OFF -DLS_BUILD_SEARCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_engine >/dev/null
out="$here/results-$(hostname -s).tsv"
LS_DATA_DIR="$src/data" "$build/bench/bench_engine" "$@" | tee "$out.tmp"
mv "$out.tmp" "$out"
