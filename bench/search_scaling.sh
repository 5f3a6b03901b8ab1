#!/usr/bin/env bash
# Search benchmark: wall time of the story job (jobs/story-stories260K.json) at 1 and 2 ranks,
# parallel efficiency T1 / (2 x T2), time per candidate, peak RSS per rank, and the number of
# evaluations greedy vs exhaustive need on the same budget range (0..3).
#
#   bench/search_scaling.sh [BUILD_DIR] [REPS]     (default build dir: ./build, REPS 1)
#
# Prints one machine-readable row per measurement ("key=value" pairs) on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}
REPS=${2:-1}
S=$B/search/litestage-search
[ -x "$S" ] || { echo "no $S (build first)" >&2; exit 1; }
T=$(mktemp -d /tmp/ls-search-bench.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOB=$ROOT/jobs/story-stories260K.json
TIME=/usr/bin/time
cpu=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1 | tr ' ' '_')
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
run() { # ranks label job -> wall seconds on stdout; RSS per rank in $T/rss.*
  local n=$1 label=$2 job=$3
  rm -f "$T/$label.h5" "$T"/rss.*
  local t0 t1
  t0=$(date +%s.%N)
  mpirun --oversubscribe -np "$n" $TIME -f "%M" -o "$T/rss.%q{OMPI_COMM_WORLD_RANK}" \
    "$S" run "$job" --store "$T/$label.h5" --quiet 2>"$T/$label.log" || { cat "$T/$label.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
ncand() { h5dump -H -d /candidates/id "$1" | sed -n 's/.*DATASPACE *SIMPLE { ( \([0-9]*\) ).*/\1/p'; }
for rep in $(seq 1 "$REPS"); do
  t1=$(run 1 np1 "$JOB"); rss1=$(cat "$T"/rss.* 2>/dev/null | tail -1)
  t2=$(run 2 np2 "$JOB"); rss2=$(cat "$T"/rss.* 2>/dev/null | paste -sd/)
  n=$(ncand "$T/np2.h5")
  eff=$(echo "$t1 / (2 * $t2)" | bc -l)
  printf 'bench=search_scaling rep=%d job=story-stories260K candidates=%d wall_np1_s=%.3f wall_np2_s=%.3f efficiency=%.3f s_per_candidate_np1=%.4f s_per_candidate_np2=%.4f peak_rss_kb_np1=%s peak_rss_kb_np2=%s commit=%s cpu=%s nproc=%d\n' \
    "$rep" "$n" "$t1" "$t2" "$eff" "$(echo "$t1 / $n" | bc -l)" "$(echo "$t2 / $n" | bc -l)" "$rss1" "$rss2" "$commit" "$cpu" "$(nproc)"
done
# greedy vs exhaustive on budgets 0..3 (the same job otherwise)
for strat in greedy exhaustive; do
  python3 - "$JOB" "$T/$strat.json" "$strat" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1])); base = os.path.dirname(sys.argv[1])
for k in ("model", "tokenizer", "template", "latency"): j[k] = os.path.normpath(os.path.join(base, j[k]))
j["dataset"]["path"] = os.path.normpath(os.path.join(base, j["dataset"]["path"]))
j["strategy"] = sys.argv[3]; j["budget"] = {"min": 0, "max": 3}; j["early_exit"] = None
json.dump(j, open(sys.argv[2], "w"))
PY
  t=$(run 2 "$strat" "$T/$strat.json")
  "$S" export "$T/$strat.h5" -o "$T/$strat.sched.json"
  lat=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['predicted_latency_ms'], s['achieved_score'])" "$T/$strat.sched.json")
  printf 'bench=search_strategy strategy=%s ranks=2 budget=0..3 evaluations=%d wall_s=%.3f chosen_predicted_ms=%s chosen_score=%s\n' \
    "$strat" "$(ncand "$T/$strat.h5")" "$t" "${lat% *}" "${lat#* }"
done
rm -rf "$T"
