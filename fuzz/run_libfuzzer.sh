#!/usr/bin/env bash
# Fuzzes one libFuzzer target (an LS_FUZZ=ON build) for a short time, starting
# from its seeds and regression inputs: the ctest "fuzz" label runs this.
#   fuzz/run_libfuzzer.sh BINARY NAME SECONDS [libFuzzer flags...]
# Exit 0 unless the fuzzer found a bug: a crash, a sanitizer report, a target
# check failing, an allocation over the limit or an input running over the
# timeout that does so again when replayed alone (a timeout that does not
# reproduce was the machine being busy, and is reported but not failed).
# A finding is kept in $LS_FUZZ_FINDINGS/NAME/ (default: ./fuzz-findings).
set -uo pipefail
bin=$1 name=$2 secs=$3
shift 3
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lsfuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/tmp"

# seeds and regression inputs, minus the known failures (fuzz/known-failures.txt)
for f in "$src/corpus/$name"/* "$src/regressions/$name"/*; do
  [[ -f "$f" ]] || continue
  grep -qxF "$name/$(basename "$f")" "$src/known-failures.txt" && continue
  cp "$f" "$work/corpus/"
done
dict=()
[[ -f "$src/dict/$name.dict" ]] && dict=(-dict="$src/dict/$name.dict")

timeout_s=${LS_FUZZ_TIMEOUT:-30}
# a fixed seed (LS_FUZZ_SEED, default 1): the same commit mutates the same way on every run, so
# the suite's verdict changes with the code, not by chance (a slower machine only gets less far)
TMPDIR=$work/tmp "$bin" -seed="${LS_FUZZ_SEED:-1}" -max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb=2560 -malloc_limit_mb=1024 \
  -max_len=65536 -artifact_prefix="$work/" -print_final_stats=1 "${dict[@]}" "$@" "$work/corpus" \
  >"$work/log" 2>&1
rc=$?
tail -n 3 "$work/log" | sed "s/^/$name: /"
[[ $rc -eq 0 ]] && exit 0

artifact=$(ls "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-* 2>/dev/null | head -n 1)
if [[ -n "$artifact" && $(basename "$artifact") == timeout-* ]]; then
  # a slow machine is not a bug: only a timeout that reproduces alone fails
  if TMPDIR=$work/tmp timeout $((timeout_s * 3)) "$bin" -timeout="$timeout_s" "$artifact" >"$work/replay.log" 2>&1; then
    echo "$name: a timeout did not reproduce when replayed alone (busy machine); not a finding"
    exit 0
  fi
fi
grep -m 1 -A 30 -E "ERROR: |==ERROR|runtime error|fuzz: " "$work/log" | head -n 40
if [[ -n "$artifact" ]]; then
  keep=${LS_FUZZ_FINDINGS:-$PWD/fuzz-findings}/$name
  mkdir -p "$keep"
  cp "$artifact" "$keep/"
  echo "$name: FINDING kept as $keep/$(basename "$artifact") (replay: $bin $keep/$(basename "$artifact"))"
fi
exit 1
