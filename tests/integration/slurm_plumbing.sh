#!/usr/bin/env bash
# The Slurm plumbing, with a stand-in search (tests/slurm/fake_search.c: same CLI and exit
# statuses as litestage-search, a deterministic result independent of ranks and restarts):
#   - slurm/submit refuses an invalid job spec before sbatch (nothing submitted);
#   - a 2-task search job through srun --mpi=pmix: one communicator of 2, schedule exported;
#   - USR1 mid-run (scancel --batch --signal=USR1, what --signal=B:USR1@120 does): the search
#     checkpoints, the job requeues itself, restarts with SLURM_RESTART_COUNT=1 and --resume,
#     and ends with the same result as an uninterrupted run; once with srun, once with mpirun;
#   - ranks started as singletons (srun --mpi=none, no PMI) are detected and the job fails;
#   - a 3-task array sweep of tolerances and its combine job (table + PNG);
#   - a sweep of job spec paths where one array task is preempted: only that task restarts.
# Skipped (77) without root or when Slurm cannot start.
set -u -o pipefail
. "$(dirname "$0")/../slurm/lib.sh"
slurm_test_init slurm_plumbing

SUBMIT=$LS_SOURCE_DIR/slurm/submit
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpicc -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -Werror -o fake_search "$SLURM_TEST_DIR/fake_search.c" ||
  fail "cannot compile fake_search.c with mpicc"
export LITESTAGE_SEARCH=$WORK/fake_search
unset LITESTAGE_LAUNCH

echo '{"steps": 8, "step_ms": 100, "tolerance": 0.02}' >short.json
echo '{"steps": 60, "step_ms": 150}' >long.json
echo '{"stpes": 8, "step_ms": 100}' >typo.json

# Reference results: the fake run standalone (a singleton, no launcher).
./fake_search run short.json --store ref-short.txt 2>/dev/null || fail "standalone fake run failed"
./fake_search run long.json --store ref-long.txt 2>/dev/null || fail "standalone fake run failed"
sum_short=$(sed -n 's/^sum //p' ref-short.txt)
sum_long=$(sed -n 's/^sum //p' ref-long.txt)
[ -n "$sum_short" ] && [ -n "$sum_long" ] || fail "no reference sums"

# 1. A typo fails before sbatch, fast, and submits nothing.
before=$(squeue -h | wc -l)
t0=$SECONDS
if out=$("$SUBMIT" --results res typo.json -n 2 2>err.txt); then
  fail "submit accepted typo.json (stdout: $out)"
fi
[ -z "$out" ] || fail "submit printed a job id for an invalid job: $out"
grep -q 'steps' err.txt || fail "submit's error does not name the problem: $(cat err.txt)"
[ $((SECONDS - t0)) -le 5 ] || fail "validation took $((SECONDS - t0)) s"
[ "$(squeue -h | wc -l)" = "$before" ] || fail "a job was submitted for an invalid spec"

# 2. Submit everything at once (the cluster runs them side by side).
plain=$("$SUBMIT" --results res short.json -n 2) || fail "submit short.json"
SUBMITTED+=(${plain})
pre_srun=$("$SUBMIT" --results res long.json -n 2) || fail "submit long.json (srun)"
SUBMITTED+=(${pre_srun})
pre_mpirun=$(LITESTAGE_LAUNCH=mpirun "$SUBMIT" --results res long.json -n 2) || fail "submit long.json (mpirun)"
SUBMITTED+=(${pre_mpirun})
single=$(LITESTAGE_LAUNCH="srun --mpi=none $SLURM_TEST_DIR/as-singleton.sh" "$SUBMIT" --results res long.json -n 2) ||
  fail "submit singleton job"
SUBMITTED+=(${single})
printf '# tolerances\n0.0\n0.05\n\n0.1   # loose\n' >sweep.txt
ids=$("$SUBMIT" --sweep sweep.txt --results res short.json) || fail "submit --sweep"
SUBMITTED+=(${ids})
sweep=$(echo "$ids" | sed -n 1p)
combine=$(echo "$ids" | sed -n 2p)
# A sweep of job spec paths (relative to the sweep file); one of its tasks gets preempted.
mkdir -p specs && cp long.json specs/a.json && cp long.json specs/b.json
printf 'a.json\nb.json\n' >specs/sweep-paths.txt
ids2=$("$SUBMIT" --sweep specs/sweep-paths.txt --results res --no-combine short.json) || fail "submit --sweep (paths)"
SUBMITTED+=(${ids2})
sweep2=$ids2
for id in "${SUBMITTED[@]}"; do [[ "$id" =~ ^[0-9]+$ ]] || fail "bad job id '$id' from submit"; done

# 3. Preempt both long jobs mid-run, release them.
preempt_and_release "$pre_srun" "res/$pre_srun/search-attempt0.log" 'step 10/'
preempt_and_release "$pre_mpirun" "res/$pre_mpirun/search-attempt0.log" 'step 10/'
# Only that array task is requeued (SLURM_JOB_ID of some task equals the array id: requeueing
# "the job id" would requeue the whole array).
preempt_and_release "${sweep2}_1" "res/$sweep2/task-1/search-attempt0.log" 'step 10/'

# 4. Results.
[ "$(wait_job "$plain" 60)" = COMPLETED ] || fail "job $plain: $(job_states "$plain")"
grep -q "\"sum\": $sum_short," "res/$plain/schedule.json" || fail "job $plain: schedule differs from the standalone run"
grep -q '"ranks": 2,' "res/$plain/schedule.json" || fail "job $plain: not 2 ranks in one communicator"
grep -q 'srun --mpi=pmix' "res/slurm-$plain.out" || fail "job $plain: not launched with srun --mpi=pmix"

for id in "$pre_srun" "$pre_mpirun"; do
  [ "$(wait_job "$id" 120)" = COMPLETED ] || fail "job $id: $(job_states "$id")"
  d=res/$id
  grep -q 'interrupted at step' "$d/search-attempt0.log" || fail "job $id: attempt 0 did not checkpoint"
  grep -q 'requeueing job' "res/slurm-$id.out" || fail "job $id: did not requeue itself"
  grep -q 'attempt 1' "res/slurm-$id.out" || fail "job $id: no restart with SLURM_RESTART_COUNT=1"
  grep -q -- '--resume' "res/slurm-$id.out" || fail "job $id: restart without --resume"
  grep -q 'resuming at step' "$d/search-attempt1.log" || fail "job $id: attempt 1 did not resume"
  grep -q "\"sum\": $sum_long," "$d/schedule.json" || fail "job $id: result after preemption differs from the uninterrupted run"
  grep -q '^restarts 1$' "$d/results.h5" || fail "job $id: store does not show exactly one restart"
done
grep -q 'running: mpirun' "res/slurm-$pre_mpirun.out" || fail "job $pre_mpirun: not launched with mpirun"

[ "$(wait_job "$single" 90)" = FAILED ] || fail "singleton job $single was not failed: $(job_states "$single")"
grep -q 'rank count mismatch' "res/slurm-$single.out" || fail "singleton job $single: no rank count message"
[ -e "res/$single/schedule.json" ] && fail "singleton job $single exported a schedule"

wait_job "$sweep" 90 >/dev/null
[ "$(job_states "$sweep" | sort -u)" = COMPLETED ] || fail "sweep $sweep: $(job_states "$sweep" | tr '\n' ' ')"
[ "$(wait_job "$combine" 60)" = COMPLETED ] || fail "combine job $combine: $(job_states "$combine")"
tsv=res/$sweep/sweep.tsv
[ -s "$tsv" ] || fail "no $tsv"
grep -q $'^task\tentry\ttolerance\tscore\treference' <<<"$(head -n 1 "$tsv")" || fail "$tsv: header $(head -n 1 "$tsv")"
[ "$(tail -n +2 "$tsv" | wc -l)" = 3 ] || fail "$tsv: not 3 rows"
# Per task: its own tolerance, and the numbers its own store/schedule gave (fake: 0.9 - tol/2).
awk -F'\t' 'NR > 1 { want = (NR == 2 ? 0 : NR == 3 ? 0.05 : 0.1);
  if ($1 != NR - 2 || $3 + 0 != want || ($4 - (0.9 - want / 2))^2 > 1e-12 || $8 + 0 != 1 + 5 * want) bad = 1 }
  END { exit bad }' "$tsv" || fail "$tsv: rows do not match their tasks: $(cat "$tsv")"
for i in 0 1 2; do
  grep -q '"ranks": 1,' "res/$sweep/task-$i/schedule.json" || fail "sweep task $i: no schedule"
done
wait_job "$sweep2" 120 >/dev/null
[ "$(job_states "$sweep2" | sort -u)" = COMPLETED ] || fail "sweep $sweep2: $(job_states "$sweep2" | tr '\n' ' ')"
grep -q 'attempt 1' "res/slurm-${sweep2}_0.out" && fail "sweep $sweep2: task 0 was restarted by task 1's requeue"
grep -q 'attempt 1' "res/slurm-${sweep2}_1.out" || fail "sweep $sweep2: task 1 was not restarted"
for i in 0 1; do
  grep -q "\"sum\": $sum_long," "res/$sweep2/task-$i/schedule.json" || fail "sweep $sweep2 task $i: wrong result"
done
[ "$(head -c 4 "res/$sweep/sweep.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "res/$sweep/sweep.png is not a PNG"
echo "slurm_plumbing: OK (jobs ${SUBMITTED[*]})"
