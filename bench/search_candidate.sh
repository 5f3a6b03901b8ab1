#!/usr/bin/env bash
# Search time per candidate on the OBQA smoke job (jobs/obqa-tinythinker-smoke.json: stories260K,
# 4 examples in 2 shards, fidelity objective, 16 new tokens per stage), one rank, one thread.
#
#   bench/search_candidate.sh [REPS] SEARCH_BINARY [SEARCH_BINARY ...]
#
# Each binary runs the job REPS times (default 3), the binaries alternating so that a load change
# hits all of them. Per run: the candidate rounds' wall time (rank 0's "round N (K candidates):
# ... in X s" lines, so start-up, the reference and the importance pass are not counted) divided
# by the candidates evaluated, and the process's user CPU time. One "key=value" row per run, then
# one summary row per binary with the medians, the CPU (lscpu model name) and the 1-minute load
# average at the start of the runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then REPS=$1; shift; fi
[ $# -ge 1 ] || { echo "usage: bench/search_candidate.sh [REPS] SEARCH_BINARY..." >&2; exit 2; }
for b in "$@"; do [ -x "$b" ] || { echo "search_candidate: $b: not an executable" >&2; exit 2; }; done
command -v /usr/bin/time >/dev/null || { echo "search_candidate: /usr/bin/time missing (scripts/deps.sh)" >&2; exit 1; }
T=$(mktemp -d /tmp/ls-search-cand.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOB=$ROOT/jobs/obqa-tinythinker-smoke.json
cpu=$(lscpu | sed -n 's/^Model name:\s*//p' | head -1 | tr ' ' '_')
load0=$(cut -d' ' -f1 /proc/loadavg)
for rep in $(seq 1 "$REPS"); do
  i=0
  for b in "$@"; do
    i=$((i + 1))
    load=$(cut -d' ' -f1 /proc/loadavg)
    rm -f "$T/s.h5"
    /usr/bin/time -f "%U" -o "$T/cpu" "$b" run "$JOB" --store "$T/s.h5" 2>"$T/log" || { cat "$T/log" >&2; exit 1; }
    read -r cands secs < <(sed -n 's/.*round [0-9]* (\([0-9]*\) candidates): .* in \([0-9.]*\) s .*/\1 \2/p' "$T/log" |
      awk '{c += $1; s += $2} END {print c, s}')
    ms=$(awk -v s="$secs" -v c="$cands" 'BEGIN {printf "%.1f", 1000 * s / c}')
    echo "bench=search_candidate	binary=$i	path=$b	rep=$rep	candidates=$cands	rounds_s=$secs	ms_per_candidate=$ms	user_cpu_s=$(cat "$T/cpu")	load=$load" | tee -a "$T/rows"
  done
done
i=0
for b in "$@"; do
  i=$((i + 1))
  med() { grep "	binary=$i	" "$T/rows" | sed -n "s/.*	$1=\([0-9.]*\).*/\1/p" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  echo "bench=search_candidate	summary=1	binary=$i	path=$b	reps=$REPS	ms_per_candidate_median=$(med ms_per_candidate)	user_cpu_s_median=$(med user_cpu_s)	cpu=$cpu	load_start=$load0	load_end=$(cut -d' ' -f1 /proc/loadavg)"
done
