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
PYH5=
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null 2>&1 && "$p" -c 'import h5py' 2>/dev/null && { PYH5=$p; break; }
done
[ -n "$PYH5" ] || fail "python3 with h5py (Debian python3-h5py) is needed to compare the stores"

make_story_job story.json 6 3 4 '[4]' '[0.2, 0.35]'

pre=$("$SUBMIT" --results res story.json -n 2) || fail "submit (preempted job)"
SUBMITTED+=(${pre})
ref=$("$SUBMIT" --results res story.json -n 2) || fail "submit (uninterrupted job)"
SUBMITTED+=(${ref})

# Signal once two candidates are done (the search is past its reference and importance passes).
preempt_and_release "$pre" "res/$pre/search-attempt0.log" ' [2-9]/[0-9]+ done'

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

"$PYH5" - "res/$pre" "res/$ref" <<'PY' || fail "preempted and uninterrupted results differ"
import json, sys
import h5py
import numpy as np

pre, ref = sys.argv[1:3]

def cands(d):
    with h5py.File(f"{d}/results.h5", "r") as f:
        c = f["candidates"]
        ids = c["id"][:]
        cols = {k: c[k][:] for k in ("kind", "budget", "ee_window", "ee_threshold", "score",
                                     "predicted_ms", "meets_target")}
        run = c["run"][:]
    return ids, cols, run

ids_p, cols_p, run_p = cands(pre)
ids_r, cols_r, run_r = cands(ref)
assert len(set(ids_p.tolist())) == len(ids_p), "a candidate was evaluated twice in the preempted store"
assert sorted(ids_p.tolist()) == sorted(ids_r.tolist()), (sorted(ids_p.tolist()), sorted(ids_r.tolist()))
assert set(run_p.tolist()) == {0, 1}, f"preempted store: runs {sorted(set(run_p.tolist()))}, want 0 and 1"
assert set(run_r.tolist()) == {0}, f"uninterrupted store: runs {sorted(set(run_r.tolist()))}"
op, orf = np.argsort(ids_p), np.argsort(ids_r)
for k in cols_p:
    a, b = cols_p[k][op], cols_r[k][orf]
    # Bit-identical: compare the bytes (NaN == NaN for candidates without a prediction).
    assert a.tobytes() == b.tobytes(), f"column {k} differs:\n{a}\n{b}"

def sched(d):
    s = json.load(open(f"{d}/schedule.json"))
    s.pop("provenance", None)
    s.pop("measured_latency_ms", None)  # wall time, differs run to run
    return s

sp, sr = sched(pre), sched(ref)
assert sp == sr, f"schedules differ:\n{json.dumps(sp, indent=1)}\n{json.dumps(sr, indent=1)}"
print(f"same {len(ids_p)} candidates ({int((run_p == 0).sum())} before the preemption, "
      f"{int((run_p == 1).sum())} after), same schedule: {[s['skip'] for s in sp['stages']]}")
PY
echo "slurm_preempt: OK (jobs ${SUBMITTED[*]})"
