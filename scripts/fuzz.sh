#!/usr/bin/env bash
# A fuzzing campaign over every fuzz target (docs/fuzzing.md): installs clang and
# libFuzzer (Debian packages) if missing, builds the LS_FUZZ=ON tree (build-fuzz),
# fuzzes each target for SECONDS with JOBS parallel workers from its seeds and
# regression inputs, and copies every new finding into fuzz/regressions/<target>/
# (as crash-*, leak-*, oom-* or timeout-*: minimise it, name it and fix the bug).
# Usage: scripts/fuzz.sh [-t SECONDS] [-j JOBS] [TARGET...]    (default: 60 s, 1 job, all)
# Environment: LS_FUZZ_TIMEOUT (seconds per input, default 10), LS_FUZZ_RSS_MB (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=60 jobs=1
while getopts "t:j:h" opt; do
  case $opt in
    t) secs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
scripts/deps.sh --with-fuzz
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLS_FUZZ=ON -DLS_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_all
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in build-fuzz/fuzz/fuzz_*; do [[ -x $f && ! -d $f ]] && targets+=("${f##*/fuzz_}"); done
fi
root=$PWD
export LS_DATA_DIR=$root/data
timeout_s=${LS_FUZZ_TIMEOUT:-10} rss=${LS_FUZZ_RSS_MB:-2048}
found=0
for t in "${targets[@]}"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/lsfuzz-campaign.XXXXXX")
  mkdir -p "$work/corpus" "$work/tmp" "$work/artifacts"
  cp fuzz/corpus/"$t"/* "$work/corpus/"
  for f in fuzz/regressions/"$t"/*; do
    [[ -f $f ]] && ! grep -qxF "$t/${f##*/}" fuzz/known-failures.txt && cp "$f" "$work/corpus/"
  done
  dict=()
  [[ -f fuzz/dict/$t.dict ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  echo "== $t: ${secs}s x $jobs job(s)" >&2
  # -fork: JOBS worker processes sharing the corpus; with -ignore_* a crash, timeout or
  # out-of-memory ends only its worker, so the campaign keeps going and keeps every finding.
  (cd "$work" && TMPDIR=$work/tmp "$root/build-fuzz/fuzz/fuzz_$t" -max_total_time="$secs" \
    -timeout="$timeout_s" -rss_limit_mb="$rss" -malloc_limit_mb="$rss" -max_len=65536 \
    -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -artifact_prefix="$work/artifacts/" "${dict[@]}" corpus >"$work/log" 2>&1) || true
  grep -E "^#[0-9]+: cov:|DONE" "$work/log" | tail -n 1 | sed "s/^/  $t: /" >&2 || true
  for a in "$work"/artifacts/*; do
    [[ -f $a ]] || continue
    # a timeout that does not come back when the input runs alone was a busy machine
    # (fork workers share the cores; the first input of a worker also pays the set-up)
    if [[ ${a##*/} == timeout-* ]] &&
       (cd "$work" && TMPDIR=$work/tmp timeout $((timeout_s * 3)) "$root/build-fuzz/fuzz/fuzz_$t" \
          -timeout="$timeout_s" "$a" >"$work/replay.log" 2>&1); then
      echo "  $t: ${a##*/} did not time out when replayed alone (busy machine); not kept" >&2
      continue
    fi
    found=$((found + 1))
    cp "$a" fuzz/regressions/"$t"/
    echo "  $t: FINDING fuzz/regressions/$t/${a##*/}" >&2
  done
  rm -rf "$work"
done
echo "fuzz: $found finding(s) copied into fuzz/regressions/" >&2
[[ $found -eq 0 ]]
