#!/usr/bin/env bash
# Search benchmark: the story job (jobs/story-stories260K.json) at 1 and 2 ranks: parallel
# efficiency, time per candidate, peak RSS per rank; and the number of evaluations greedy vs
# exhaustive need on the same budget range (0..3).
#
#   bench/search_scaling.sh [BUILD_DIR] [REPS]     (default build dir: ./build, REPS 3)
#
# Two times per run:
#   search_s  rank 0's "done in" time: from the reference pass to the stored schedule (after
#             MPI_Init, model load and store creation);
#   wall_s    the whole `mpirun -np N litestage-search run` command, start-up included.
# Efficiency = T1 / (2 x T2) of each. Runs alternate np 1 / np 2 so that a load change hits both;
# one row per run, then a summary with medians over REPS and the load average (1 min) seen at the
# start of the runs. Rows are "key=value" pairs on stdout (bench/README.md, "search").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}
REPS=${2:-3}
S=$B/search/litestage-search
[ -x "$S" ] || { echo "no $S (build first)" >&2; exit 1; }
for tool in bc /usr/bin/time mpirun; do
  command -v "$tool" >/dev/null || { echo "search_scaling: $tool missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
T=$(mktemp -d /tmp/ls-search-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOB=$ROOT/jobs/story-stories260K.json
TIME=/usr/bin/time
cpu=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1 | tr ' ' '_')
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
load() { cut -d' ' -f1 /proc/loadavg; }
# run RANKS LABEL JOB: sets WALL, SEARCH (seconds), RSS (kB per rank, "/"-separated), LOAD
run() {
  local n=$1 label=$2 job=$3
  rm -f "$T/$label.h5" "$T"/rss.*
  LOAD=$(load)
  local t0 t1
  t0=$(date +%s.%N)
  # each rank under /usr/bin/time, its peak RSS in rss.RANK
  mpirun --oversubscribe -np "$n" sh -c 'exec '"$TIME"' -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$T/rss" \
    "$S" run "$job" --store "$T/$label.h5" --quiet 2>"$T/$label.log" || { cat "$T/$label.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  WALL=$(echo "$t1 - $t0" | bc -l)
  SEARCH=$(sed -n 's/^litestage-search: done in \([0-9.]*\) s.*/\1/p' "$T/$label.log")
  [ -n "$SEARCH" ] || { cat "$T/$label.log" >&2; echo "no 'done in' line" >&2; exit 1; }
  RSS=$(cat "$T"/rss.* 2>/dev/null | paste -sd/)
}
ncand() { h5dump -H -d /candidates/id "$1" | sed -n 's/.*DATASPACE *SIMPLE { ( \([0-9]*\) ).*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: >"$T/eff_search"; : >"$T/eff_wall"; : >"$T/loads"
for rep in $(seq 1 "$REPS"); do
  run 1 np1 "$JOB"; w1=$WALL s1=$SEARCH rss1=$RSS l1=$LOAD
  run 2 np2 "$JOB"; w2=$WALL s2=$SEARCH rss2=$RSS l2=$LOAD
  n=$(ncand "$T/np2.h5")
  es=$(echo "$s1 / (2 * $s2)" | bc -l); ew=$(echo "$w1 / (2 * $w2)" | bc -l)
  echo "$es" >>"$T/eff_search"; echo "$ew" >>"$T/eff_wall"; printf '%s\n%s\n' "$l1" "$l2" >>"$T/loads"
  printf 'bench=search_scaling rep=%d job=story-stories260K candidates=%d search_np1_s=%.3f search_np2_s=%.3f efficiency_search=%.3f wall_np1_s=%.3f wall_np2_s=%.3f efficiency_wall=%.3f s_per_candidate_np1=%.4f s_per_candidate_np2=%.4f peak_rss_kb_np1=%s peak_rss_kb_np2=%s load1=%s/%s commit=%s cpu=%s nproc=%d\n' \
    "$rep" "$n" "$s1" "$s2" "$es" "$w1" "$w2" "$ew" "$(echo "$s1 / $n" | bc -l)" "$(echo "$s2 / $n" | bc -l)" \
    "$rss1" "$rss2" "$l1" "$l2" "$commit" "$cpu" "$(nproc)"
done
printf 'bench=search_scaling_summary reps=%d median_efficiency_search=%.3f median_efficiency_wall=%.3f load1_min=%s load1_max=%s\n' \
  "$REPS" "$(median <"$T/eff_search")" "$(median <"$T/eff_wall")" "$(sort -g "$T/loads" | head -1)" "$(sort -g "$T/loads" | tail -1)"
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
  run 2 "$strat" "$T/$strat.json"
  "$S" export "$T/$strat.h5" -o "$T/$strat.sched.json"
  lat=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['predicted_latency_ms'], s['achieved_score'])" "$T/$strat.sched.json")
  printf 'bench=search_strategy strategy=%s ranks=2 budget=0..3 evaluations=%d search_s=%.3f wall_s=%.3f chosen_predicted_ms=%s chosen_score=%s\n' \
    "$strat" "$(ncand "$T/$strat.h5")" "$SEARCH" "$WALL" "${lat% *}" "${lat#* }"
done
