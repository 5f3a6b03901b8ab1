#!/usr/bin/env bash
# The Slurm plumbing around the real litestage-search (small copies of
# jobs/story-stories260K.json, seconds per run), the parts that slurm_search.sh (srun
# --mpi=pmix job, tolerance sweep + combine) and slurm_preempt.sh (USR1 + requeue + resume
# through srun) do not cover:
#   - slurm/submit refuses a job spec with a misspelt key within a second, naming the key,
#     and submits nothing;
#   - 2-task jobs launched with mpirun (LITESTAGE_LAUNCH=mpirun): one communicator of 2;
#   - USR1 mid-run through mpirun: the search checkpoints (status 3), the job requeues itself,
#     restarts with SLURM_RESTART_COUNT=1 and --resume, and ends with the same candidates,
#     bit-identical numbers and schedule as the uninterrupted mpirun job run beside it;
#   - ranks started as singletons (srun --mpi=none + tests/slurm/as-singleton.sh, which strips
#     the PMIx/Slurm environment, so each real search initialises as a world of 1) are
#     detected ("rank count mismatch") and the job fails without a schedule;
#   - a sweep over job spec paths where one array task is preempted: only that task restarts,
#     and both tasks end with the same result (which is also the 2-rank jobs' result: the
#     search does not depend on the number of ranks).
# Skipped (77) without root, when Slurm cannot start, or when litestage-search is not built.
set -u -o pipefail
. "$(dirname "$0")/../slurm/lib.sh"
slurm_test_init slurm_plumbing
need_search
need_h5py
command -v h5dump >/dev/null || fail "h5dump (hdf5-tools) is needed"
SUBMIT=$LS_SOURCE_DIR/slurm/submit
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset LITESTAGE_LAUNCH

# 37 candidates, several seconds per run: long enough to be preempted after the second one.
make_story_job long.json 8 4 10 '[4, 8]' '[0.2, 0.35]'
python3 -c 'import json; j=json.load(open("long.json")); j["limt"]=j.pop("limit"); json.dump(j,open("typo.json","w"))' ||
  fail "cannot write typo.json"

# 1. A typo fails before sbatch, fast, naming the key, and submits nothing.
[ -z "$(jobs_from_here)" ] || fail "jobs from $WORK before the test submitted any: $(jobs_from_here | tr '\n' ' ')"
t0=$(date +%s%N)
if out=$("$SUBMIT" --results res typo.json -n 2 2>err.txt); then
  fail "submit accepted typo.json (stdout: $out)"
fi
ms=$((($(date +%s%N) - t0) / 1000000))
[ -z "$out" ] || fail "submit printed a job id for an invalid job: $out"
grep -q 'limt' err.txt || fail "submit's error does not name the key: $(cat err.txt)"
[ "$ms" -lt 1000 ] || fail "validation took $ms ms"
[ -z "$(jobs_from_here)" ] || fail "job(s) $(jobs_from_here | tr '\n' ' ')submitted for an invalid spec"
echo "typo refused in $ms ms: $(tail -n 1 err.txt)"

# 2. Submit everything at once (the cluster runs them side by side).
ref=$(LITESTAGE_LAUNCH=mpirun "$SUBMIT" --results res long.json -n 2) || fail "submit long.json (mpirun)"
SUBMITTED+=(${ref})
# The jobs to be preempted wait before candidate #3 until the signal (or until the hold
# file goes, for the sweep's other task): LS_SEARCH_TEST_HOLD, search/evaluate.c. These searches
# are faster than a signal through Slurm.
touch hold
pre=$(LS_SEARCH_TEST_HOLD="3:$PWD/hold" LITESTAGE_LAUNCH=mpirun "$SUBMIT" --results res long.json -n 2) ||
  fail "submit long.json (mpirun, preempted)"
SUBMITTED+=(${pre})
single=$(LITESTAGE_LAUNCH="srun --mpi=none $SLURM_TEST_DIR/as-singleton.sh" "$SUBMIT" --results res long.json -n 2) ||
  fail "submit singleton job"
SUBMITTED+=(${single})
# A sweep of job spec paths (relative to the sweep file); task 1 gets preempted.
mkdir -p specs && cp long.json specs/a.json && cp long.json specs/b.json
printf '# job specs\na.json\n\nb.json   # the preempted one\n' >specs/sweep-paths.txt
sweep=$(LS_SEARCH_TEST_HOLD="3:$PWD/hold" "$SUBMIT" --sweep specs/sweep-paths.txt --results res --no-combine long.json) ||
  fail "submit --sweep (paths)"
SUBMITTED+=(${sweep})
for id in "${SUBMITTED[@]}"; do [[ "$id" =~ ^[0-9]+$ ]] || fail "bad job id '$id' from submit"; done
# (The check in 1. can see a job: jobs_from_here finds these.)
grep -qx "$ref" <<<"$(jobs_from_here)" || fail "jobs_from_here does not list job $ref"

# 3. Preempt the mpirun job and sweep task 1 once two candidates are done (past the reference
# and importance passes), then release both. Requeueing "the job id" of an array task would
# requeue the whole array: the sbatch must requeue ARRAYID_TASK.
preempt_job "$pre" "res/$pre/search-attempt0.log" ' [2-9]/[0-9]+ done'
preempt_job "${sweep}_1" "res/$sweep/task-1/search-attempt0.log" ' [2-9]/[0-9]+ done'
rm -f hold
release_job "$pre"
release_job "${sweep}_1"

# 4. The uninterrupted mpirun job: one communicator of 2.
[ "$(wait_job "$ref" 150)" = COMPLETED ] || fail "job $ref: $(job_states "$ref")"
grep -q 'running: mpirun -np 2' "res/slurm-$ref.out" || fail "job $ref: not launched with mpirun"
[ "$(grep -c 'litestage-search: world size' "res/$ref/search-attempt0.log")" = 1 ] &&
  grep -q 'litestage-search: world size 2' "res/$ref/search-attempt0.log" ||
  fail "job $ref: the search did not report one world of size 2"
[ "$(h5attr "res/$ref/results.h5" ranks)" = 2 ] || fail "job $ref: store ranks '$(h5attr "res/$ref/results.h5" ranks)', not 2"
[ "$(h5attr "res/$ref/results.h5" runs)" = 1 ] || fail "job $ref: store runs '$(h5attr "res/$ref/results.h5" runs)', not 1"
[ -s "res/$ref/schedule.json" ] || fail "job $ref: no schedule exported"

# 5. The preempted mpirun job.
[ "$(wait_job "$pre" 150)" = COMPLETED ] || fail "job $pre: $(job_states "$pre")"
out=res/slurm-$pre.out
grep -q 'got SIGUSR1' "$out" || fail "job $pre: the batch script did not get USR1"
grep -q 'search step ended with status 3' "$out" || fail "job $pre: the search (under mpirun) did not checkpoint with status 3"
grep -q "requeueing job $pre\$" "$out" || fail "job $pre: did not requeue itself"
grep -q "job $pre attempt 1" "$out" || fail "job $pre: no restart with SLURM_RESTART_COUNT=1"
grep -q 'running: mpirun -np 2 .* --resume' "$out" || fail "job $pre: not restarted through mpirun with --resume"
grep -q 'litestage-search: world size 2' "res/$pre/search-attempt1.log" || fail "job $pre: resumed run did not report world size 2"
[ "$(h5attr "res/$pre/results.h5" runs)" = 2 ] || fail "job $pre: store runs '$(h5attr "res/$pre/results.h5" runs)', not 2"
same_results "res/$pre" 0,1 "res/$ref" 0

# 6. The singletons.
[ "$(wait_job "$single" 90)" = FAILED ] || fail "singleton job $single was not failed: $(job_states "$single")"
grep -q 'litestage-search: world size 1' "res/$single/search-attempt0.log" ||
  fail "singleton job $single: the real search did not start as a singleton (no 'world size 1')"
grep -q 'rank count mismatch' "res/slurm-$single.out" || fail "singleton job $single: no rank count message"
[ -e "res/$single/schedule.json" ] && fail "singleton job $single exported a schedule"

# 7. The sweep of job spec paths.
wait_job "$sweep" 150 >/dev/null
[ "$(job_states "$sweep" | sort -u)" = COMPLETED ] || fail "sweep $sweep: $(job_states "$sweep" | tr '\n' ' ')"
grep -q 'attempt 1' "res/slurm-${sweep}_0.out" && fail "sweep $sweep: task 0 was restarted by task 1's requeue"
grep -q "requeueing job ${sweep}_1\$" "res/slurm-${sweep}_1.out" || fail "sweep $sweep: task 1 did not requeue itself as ${sweep}_1"
grep -q 'attempt 1' "res/slurm-${sweep}_1.out" || fail "sweep $sweep: task 1 was not restarted"
for i in 0 1; do
  d=res/$sweep/task-$i
  [ "$(h5attr "$d/results.h5" ranks)" = 1 ] || fail "$d/results.h5: ranks '$(h5attr "$d/results.h5" ranks)', not 1"
  # Each task ran its own entry's spec (made absolute in the task's job.json copy).
  python3 - "$d/job.json" "specs/$([ "$i" = 0 ] && echo a || echo b).json" <<'PY' || fail "$d/job.json is not its sweep entry's spec"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a.pop("threads", None); b.pop("threads", None)
assert a == b, (a, b)
PY
done
[ "$(h5attr "res/$sweep/task-1/results.h5" runs)" = 2 ] || fail "sweep task 1: store runs is not 2"
same_results "res/$sweep/task-1" 0,1 "res/$sweep/task-0" 0
# One rank or two: the same result.
same_results "res/$sweep/task-0" 0 "res/$ref" 0
echo "slurm_plumbing: OK (jobs ${SUBMITTED[*]})"
