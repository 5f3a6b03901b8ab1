#!/usr/bin/env bash
# Preemption of the real litestage-search under Slurm: a 2-task search job gets the warning
# signal mid-run (scancel --batch --signal=USR1, what --signal=B:USR1@120 delivers); the
# search checkpoints (exit 3), the job requeues itself, is released
# (scontrol update StartTime=now), restarts with SLURM_RESTART_COUNT=1 and --resume, and
# finishes with the same result as an uninterrupted 2-task job run beside it: the same
# candidates with bit-identical scores and predicted latencies, no candidate evaluated
# twice, the same chosen schedule.
# Skipped (77) without root, when Slurm cannot start, or when litestage-search is not built.
set -u -o pipefail
. "$(dirname "$0")/../slurm/lib.sh"
slurm_test_init slurm_preempt
need_search
SUBMIT=$LS_SOURCE_DIR/slurm/submit
need_h5py

make_story_job story.json 6 3 4 '[4]' '[0.2, 0.35]'

# The preempted job's ranks wait before candidate #3 (three candidates done) until the signal
# comes (LS_SEARCH_TEST_HOLD, search/evaluate.c): this search is faster than a signal through
# Slurm. The hold file goes once the signal is sent, so the restarted run does not wait.
touch hold
pre=$(LS_SEARCH_TEST_HOLD="3:$PWD/hold" "$SUBMIT" --results res story.json -n 2) || fail "submit (preempted job)"
SUBMITTED+=(${pre})
ref=$("$SUBMIT" --results res story.json -n 2) || fail "submit (uninterrupted job)"
SUBMITTED+=(${ref})

# Signal once two candidates are done (the search is past its reference and importance passes).
preempt_job "$pre" "res/$pre/search-attempt0.log" ' [2-9]/[0-9]+ done'
rm -f hold
release_job "$pre"

[ "$(wait_job "$ref" 170)" = COMPLETED ] || fail "uninterrupted job $ref: $(job_states "$ref")"
[ "$(wait_job "$pre" 170)" = COMPLETED ] || fail "preempted job $pre: $(job_states "$pre")"

out=res/slurm-$pre.out
grep -q 'got SIGUSR1' "$out" || fail "job $pre: the batch script did not get USR1"
grep -q 'search step ended with status 3' "$out" || fail "job $pre: the search did not checkpoint with status 3"
grep -q 'requeueing job' "$out" || fail "job $pre: did not requeue itself"
grep -q "job $pre attempt 1" "$out" || fail "job $pre: no restart with SLURM_RESTART_COUNT=1"
grep -q -- '--resume' "$out" || fail "job $pre: restarted without --resume"
grep -q 'world size 2' "res/$pre/search-attempt1.log" || fail "job $pre: resumed run did not report world size 2"
[ "$(h5attr "res/$pre/results.h5" status)" = complete ] || fail "job $pre: store not complete"

[ "$(h5attr "res/$pre/results.h5" runs)" = 2 ] || fail "job $pre: store runs is '$(h5attr "res/$pre/results.h5" runs)', not 2"
# The same candidates (some before the preemption, some after), bit-identical numbers, the
# same schedule as the uninterrupted job.
same_results "res/$pre" 0,1 "res/$ref" 0
echo "slurm_preempt: OK (jobs ${SUBMITTED[*]})"
