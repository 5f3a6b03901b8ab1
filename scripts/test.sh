#!/usr/bin/env bash
# Runs every LiteStage test on a fresh Debian machine: installs missing
# packages (as root), builds the Release tree and runs ctest, then builds the
# ASan+UBSan tree and runs ctest there too (integration tests that start a
# Slurm cluster, and the README tour, run in the Release tree only), then
# fuzzes every parser for a few seconds with libFuzzer (clang build, build-fuzz;
# docs/fuzzing.md). Tests run nproc at a time (ctest -j); none asserts a time.
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -R generate
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --with-slurm
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

echo "== Release build and tests" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLS_BUILD_SEARCH=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --timeout 900 -j"$jobs" "$@")

echo "== ASan+UBSan build and tests" >&2
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLS_SANITIZE=ON -DLS_BUILD_SEARCH=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure --timeout 900 -j"$jobs" -LE 'slurm|bench|tour' "$@")

echo "== libFuzzer: every fuzz target for a few seconds from its seeds and regression inputs" >&2
scripts/deps.sh --with-fuzz
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLS_FUZZ=ON -DLS_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_all
(cd build-fuzz && ctest --output-on-failure --timeout 900 -j"$jobs" -L fuzz "$@")
