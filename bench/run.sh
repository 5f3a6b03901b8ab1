#!/usr/bin/env bash
# Builds LiteStage (Release) in build-bench/ and runs the engine benchmark.
# Rows go to stdout (tab-separated key=value) and to bench/results-HOST.tsv.
# Extra arguments are passed to bench_engine (e.g. --only tinyllama --reps 5).
#
# Besides the in-memory synthetic TinyLlama-shape model, the same shape is
# benchmarked from a real GGUF file loaded through ls_model_load (mmap), as
# users run it: build-bench/tinyllama-shape-q8_0.gguf, written once by
# `litestage-run synth` (~1.1 GB). --no-file skips that part; --only stories
# skips it too.
# The benchmark is not a test: run it on an otherwise idle machine (the rows
# carry the load average and CPU time per token so noisy runs are visible).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(dirname "$here")"
"$src/scripts/deps.sh"  # installs missing Debian packages (root) or names them
build="${LS_BENCH_BUILD:-$src/build-bench}"
with_file=1
args=()
prev=""
for a in "$@"; do
  if [[ "$a" == "--no-file" ]]; then with_file=0; continue; fi
  if [[ "$prev" == "--only" && "$a" == "stories" ]]; then with_file=0; fi
  args+=("$a")
  prev="$a"
done
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLS_BUILD_TESTS=OFF -DLS_BUILD_SEARCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_engine litestage-run >/dev/null
out="$here/results-$(hostname -s).tsv"
LS_DATA_DIR="$src/data" "$build/bench/bench_engine" "${args[@]+"${args[@]}"}" | tee "$out.tmp"
if [[ $with_file == 1 ]]; then
  model="$build/tinyllama-shape-q8_0.gguf"
  if [[ ! -s "$model" ]]; then
    "$build/runtime/litestage-run" synth -o "$model" --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
      --vocab 32000 --type q8_0 >&2
  fi
  # the flags given, minus --only (the file is the TinyLlama-shape case)
  fargs=()
  skip=0
  for a in "${args[@]+"${args[@]}"}"; do
    if [[ $skip == 1 ]]; then skip=0; continue; fi
    if [[ "$a" == "--only" ]]; then skip=1; continue; fi
    fargs+=("$a")
  done
  LS_DATA_DIR="$src/data" "$build/bench/bench_engine" --only tinyllama --model "$model" "${fargs[@]+"${fargs[@]}"}" |
    tee -a "$out.tmp"
fi
mv "$out.tmp" "$out"
