#!/usr/bin/env bash
# The real litestage-search through Slurm on the bundled model (a smaller copy of
# jobs/story-stories260K.json): slurm/submit validates first (a bad spec submits nothing);
# a 2-task search job (srun --mpi=pmix) leaves a complete store with ranks=2 and an exported
# schedule equal to the store's; a 3-task tolerance sweep leaves one store per task and a
# combine job's table (each row from its own store) and plot.
# Skipped (77) without root, when Slurm cannot start, or when litestage-search is not built.
set -u -o pipefail
. "$(dirname "$0")/../slurm/lib.sh"
slurm_test_init slurm_search
need_search
command -v h5dump >/dev/null || fail "h5dump (hdf5-tools) is needed"
SUBMIT=$LS_SOURCE_DIR/slurm/submit

make_story_job story.json 6 3 4 '[4]' '[0.2, 0.35]'

# A bad objective fails at submit time, naming the key, and submits nothing.
python3 -c 'import json,sys; j=json.load(open("story.json")); j["objective"]="fidelty"; json.dump(j,open("bad.json","w"))'
[ -z "$(jobs_from_here)" ] || fail "jobs from $WORK before the test submitted any: $(jobs_from_here | tr '\n' ' ')"
if out=$("$SUBMIT" --results res bad.json -n 2 2>err.txt); then fail "submit accepted bad.json ($out)"; fi
grep -q 'objective' err.txt || fail "submit's error does not name the key: $(cat err.txt)"
[ -z "$(jobs_from_here)" ] || fail "job(s) $(jobs_from_here | tr '\n' ' ')submitted for an invalid spec"

job=$("$SUBMIT" --results res story.json -n 2) || fail "submit story.json"
SUBMITTED+=(${job})
grep -qx "$job" <<<"$(jobs_from_here)" || fail "jobs_from_here does not list job $job (so the check above proves nothing)"
printf '0.0\n0.05\n0.3\n' >tolerances.txt
ids=$("$SUBMIT" --sweep tolerances.txt --results res story.json -n 1) || fail "submit --sweep"
SUBMITTED+=(${ids})
sweep=$(echo "$ids" | sed -n 1p)
combine=$(echo "$ids" | sed -n 2p)

# The 2-task job.
[ "$(wait_job "$job" 150)" = COMPLETED ] || fail "job $job: $(job_states "$job")"
d=res/$job
grep -q 'litestage-search: world size 2' "$d/search-attempt0.log" || fail "job $job: search did not report world size 2"
[ "$(h5attr "$d/results.h5" ranks)" = 2 ] || fail "$d/results.h5: ranks is '$(h5attr "$d/results.h5" ranks)', not 2"
[ "$(h5attr "$d/results.h5" status)" = complete ] || fail "$d/results.h5: status '$(h5attr "$d/results.h5" status)'"
[ "$(h5attr "$d/results.h5" threads)" = 1 ] || fail "$d/results.h5: threads is not 1 (--cpus-per-task default)"
grep -q 'DATASET "score"' <<<"$(h5dump -H "$d/results.h5")" || fail "$d/results.h5: no score datasets"
python3 - "$d" <<'PY' || fail "job $job: schedule check failed"
import json, subprocess, sys
d = sys.argv[1]
sched = json.load(open(f"{d}/schedule.json"))
assert [s["name"] for s in sched["stages"]] == ["beginning", "middle", "end"], sched["stages"]
assert sched["achieved_score"] >= sched["target"] - 1e-12, (sched["achieved_score"], sched["target"])
assert sched["speedup"] > 0 and sched["predicted_latency_ms"] > 0
# The store's chosen schedule is the exported one.
dump = subprocess.run(["h5dump", "-d", "/schedule", "-y", f"{d}/results.h5"], capture_output=True, text=True).stdout
body = dump[dump.index('"{'):] if '"{' in dump else ""
assert str(sched["provenance"]["candidate_id"]) in body and '"stages"' in body, "store /schedule does not hold the schedule"
job = json.load(open(f"{d}/job.json"))
assert job["threads"] == 1 and job["model"].startswith("/"), job
PY
grep -q 'srun --mpi=pmix' "res/slurm-$job.out" || fail "job $job: not launched with srun --mpi=pmix"

# The sweep and its table.
wait_job "$sweep" 170 >/dev/null
[ "$(job_states "$sweep" | sort -u)" = COMPLETED ] || fail "sweep $sweep: $(job_states "$sweep" | tr '\n' ' ')"
[ "$(wait_job "$combine" 60)" = COMPLETED ] || fail "combine job $combine: $(job_states "$combine")"
for i in 0 1 2; do
  s=res/$sweep/task-$i/results.h5
  [ "$(h5attr "$s" ranks)" = 1 ] || fail "$s: ranks '$(h5attr "$s" ranks)', not 1"
  [ "$(h5attr "$s" status)" = complete ] || fail "$s: not complete"
done
tsv=res/$sweep/sweep.tsv
cat "$tsv"
python3 - "$tsv" "res/$sweep" <<'PY' || fail "$tsv does not match the stores"
import json, sys
tsv, sd = sys.argv[1:3]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)]
head, rows = rows[0], rows[1:]
assert head[:10] == ["task", "entry", "tolerance", "score", "reference", "target", "predicted_ms",
                     "speedup", "candidate", "status"], head
assert len(rows) == 3, rows
for i, (r, tol) in enumerate(zip(rows, [0.0, 0.05, 0.3])):
    v = dict(zip(head, r))
    assert int(v["task"]) == i and abs(float(v["tolerance"]) - tol) < 1e-12, v
    # Each row holds its own task's schedule.
    s = json.load(open(f"{sd}/task-{i}/schedule.json"))
    assert abs(float(v["score"]) - s["achieved_score"]) <= 1e-5 * max(1, abs(s["achieved_score"])), (v, s)
    assert abs(float(v["speedup"]) - s["speedup"]) <= 1e-5 * s["speedup"], (v, s)
    assert abs(float(v["target"]) - (float(v["reference"]) - tol)) < 1e-6, v
    assert float(v["score"]) >= float(v["target"]) - 1e-9, v
    assert v["status"] == "complete", v
    job = json.load(open(f"{sd}/task-{i}/job.json"))
    assert job["tolerance"] == tol, job["tolerance"]
PY
[ "$(head -c 4 "res/$sweep/sweep.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "res/$sweep/sweep.png is not a PNG"
echo "slurm_search: OK (jobs ${SUBMITTED[*]})"
