#!/usr/bin/env bash
# The main job, end to end on a fresh Debian machine:
#   1. install missing packages (as root) and build (Release);
#   2. search a per-stage schedule for the bundled stories260K model with 2 MPI ranks
#      (jobs/story-stories260K.json: fidelity objective, greedy budgets, early-exit sweep);
#   3. export the chosen schedule;
#   4. run the three-stage story chain with the schedule and with the full model on
#      held-out stories, and print per-stage budgets, early exit, fidelity and speedup.
# Usage: scripts/demo.sh [OUTPUT_DIR]   (default out/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
ranks=${LS_DEMO_RANKS:-2}
scripts/deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

echo "== build" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLS_BUILD_SEARCH=ON >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
RUN=build/runtime/litestage-run
SEARCH=build/search/litestage-search
M=data/models/stories260K
JOB=jobs/story-stories260K.json
mkdir -p "$out"

echo "== search: mpirun -np $ranks $SEARCH run $JOB" >&2
rm -f "$out/results.h5"
mpirun -np "$ranks" "$SEARCH" run "$JOB" --store "$out/results.h5"
"$SEARCH" export "$out/results.h5" -o "$out/schedule.json"
"$SEARCH" show "$out/results.h5" >"$out/search-summary.txt"

# The job calibrates on the first `limit` stories; evaluate on the next ones.
limit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["limit"])' "$JOB")
echo "== runtime: pipeline with the schedule vs the full model (stories $limit..$((2 * limit - 1)), held out)" >&2
"$RUN" pipeline -m "$M/stories260K.bin" -z "$M/tok512.bin" --stages data/templates/story.json \
  --data data/corpora/tinystories_val_subset.txt --format stories --limit $((2 * limit)) --shard 1/2 \
  --schedule "$out/schedule.json" --compare-full --out "$out/pipeline.jsonl" -q >"$out/pipeline-summary.txt"

python3 - "$out/schedule.json" "$out/pipeline.jsonl" <<'PY'
import json, sys
sched = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2])]
print()
print("LiteStage demo: stories260K, story chain, schedule from %s" % sched.get("provenance", {}).get("results_file", "?"))
print("%-10s %8s  %-34s %s" % ("stage", "skipped", "sub-layers", "early exit (window, threshold)"))
for st in sched["stages"]:
    ee = st.get("early_exit") or {}
    eestr = "off" if not ee.get("window") else "%d, %.2f" % (ee["window"], ee["threshold"])
    print("%-10s %8d  %-34s %s" % (st["name"], len(st["skip"]), ",".join(st["skip"]) or "-", eestr))
n = len(rows)
lat = sum(r["latency_ms"] for r in rows) / n
full = sum(r["full_latency_ms"] for r in rows) / n
fid = sum(r["token_agreement"] for r in rows) / n
print()
print("held-out examples          %d" % n)
print("fidelity vs full model     %.3f   (search target %.3f, achieved on calibration %.3f)" %
      (fid, sched.get("target") or float("nan"), sched.get("achieved_score") or float("nan")))
print("latency per example        %.2f ms (full model %.2f ms)" % (lat, full))
print("speedup (measured)         %.2fx   (predicted by the search: %.2fx)" %
      (full / lat if lat else float("nan"), sched.get("speedup") or float("nan")))
PY
echo >&2
echo "results: $out/results.h5 (h5dump -H), schedule: $out/schedule.json, per-example: $out/pipeline.jsonl" >&2
