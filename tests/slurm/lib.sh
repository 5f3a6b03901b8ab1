# Shared helpers for the Slurm integration tests (source it; bash).
#   slurm_test_init NAME   root check + cluster up (exit 77 with the reason otherwise),
#                          mkdtemp work dir in $WORK (removed at exit unless LS_KEEP_TMP=1)
#   job_states ID          the JobState of every job/array task with that id, one per line
#   wait_job ID SECONDS    waits until every task is in a final state; prints them
#   wait_state ID STATE SECONDS   waits until the job is in STATE
#   fail MSG               prints MSG (and the job outputs in $WORK) and exits 1

LS_SOURCE_DIR=${LS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SLURM_TEST_DIR=$LS_SOURCE_DIR/tests/slurm

slurm_test_init() {
  TEST_NAME=$1
  if [ "$(id -u)" != 0 ]; then
    echo "$TEST_NAME: SKIP: needs root to start a one-node Slurm cluster (munged, slurmctld, slurmd)" >&2
    exit 77
  fi
  bash "$SLURM_TEST_DIR/cluster-up.sh"
  local rc=$?
  if [ "$rc" = 77 ]; then
    echo "$TEST_NAME: SKIP: the one-node Slurm cluster cannot start here (see above)" >&2
    exit 77
  fi
  [ "$rc" = 0 ] || { echo "$TEST_NAME: FAIL: cluster-up.sh exited with $rc" >&2; exit 1; }
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ls-$TEST_NAME.XXXXXX")
  # Slurm jobs run as root in the submit folder; keep everything in WORK.
  if [ "${LS_KEEP_TMP:-0}" != 1 ]; then
    trap 'slurm_test_cleanup' EXIT
  fi
  cd "$WORK" || exit 1
  SUBMITTED=()
}

# Cancels what this test submitted (by id) and removes WORK.
slurm_test_cleanup() {
  local id
  for id in "${SUBMITTED[@]}"; do scancel "$id" 2>/dev/null; done
  cd / && rm -rf "$WORK"
}

fail() {
  echo "$TEST_NAME: FAIL: $*" >&2
  local f
  for f in $(find "$WORK" -name 'slurm-*.out' 2>/dev/null | sort); do
    echo "--- $f" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

job_states() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }

is_final() {
  case "$1" in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) return 0 ;;
    *) return 1 ;;
  esac
}

wait_job() { # id seconds
  local deadline=$((SECONDS + $2)) s all
  while [ "$SECONDS" -lt "$deadline" ]; do
    all=1
    for s in $(job_states "$1"); do is_final "$s" || all=0; done
    if [ "$all" = 1 ] && [ -n "$(job_states "$1")" ]; then
      job_states "$1"
      return 0
    fi
    sleep 1
  done
  fail "job $1 not finished after $2 s (states: $(job_states "$1" | tr '\n' ' '))"
}

wait_state() { # id state seconds
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    grep -qx "$2" <<<"$(job_states "$1")" && return 0
    sleep 0.5
  done
  fail "job $1 not $2 after $3 s (states: $(job_states "$1" | tr '\n' ' '))"
}

# wait_file_grep FILE REGEX SECONDS
wait_file_grep() {
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.5
  done
  fail "'$2' did not appear in $1 within $3 s"
}

# Preempt a running job the way Slurm's warning signal does (USR1 to the batch script), once
# REGEX appears in LOG. Signal several jobs first, then release them: a job waiting for its
# release lets the others run on.
#   preempt_job ID LOG_TO_WATCH REGEX_BEFORE_SIGNAL
preempt_job() {
  wait_file_grep "$2" "$3" 90
  scancel --batch --signal=USR1 "$1" || fail "scancel --batch --signal=USR1 $1 failed"
}

# release_job ID: waits until the job requeued itself (PENDING, held by BeginTime, restart
# count 1), then releases it (scontrol update StartTime=now).
release_job() {
  wait_state "$1" PENDING 90
  grep -q 'Restarts=1' <<<"$(scontrol show job "$1")" || fail "job $1 pending but Restarts is not 1: $(scontrol show job "$1" | grep -o 'Restarts=[0-9]*')"
  # Release only after the first run's processes are gone on the node: slurmd refuses to
  # start a job whose previous run it is still cleaning up ("Job credential revoked"), and
  # the job then fails for good. Slurm's own hold (BeginTime) avoids this in real use.
  local num deadline
  num=$(scontrol show job "$1" | sed -n 's/^JobId=\([0-9]*\).*/\1/p' | head -n 1)
  deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ] && grep -qE "^slurmstepd: \[$num[].]" <<<"$(ps -eo args)"; do
    sleep 0.5
  done
  grep -qE "^slurmstepd: \[$num[].]" <<<"$(ps -eo args)" && fail "job $1 (id $num): slurmstepd still running 60 s after the requeue"
  sleep 2
  scontrol update jobid="$1" StartTime=now || fail "scontrol update jobid=$1 StartTime=now failed"
}

#   preempt_and_release ID LOG_TO_WATCH REGEX_BEFORE_SIGNAL
preempt_and_release() {
  preempt_job "$@"
  release_job "$1"
}

# need_search: LS_SEARCH (set by ctest when litestage-search is built) must be executable.
need_search() {
  if [ -z "${LS_SEARCH:-}" ] || [ ! -x "$LS_SEARCH" ]; then
    echo "$TEST_NAME: SKIP: litestage-search is not built (LS_SEARCH='${LS_SEARCH:-}')" >&2
    exit 77
  fi
  export LITESTAGE_SEARCH=$LS_SEARCH
}

# make_story_job OUT LIMIT SHARDS BUDGET_MAX WINDOWS THRESHOLDS: a smaller copy of the shipped
# story job (jobs/story-stories260K.json) with absolute paths, for tests that must stay short.
# WINDOWS and THRESHOLDS are JSON lists, e.g. '[4]' '[0.2]'.
make_story_job() {
  "$LS_SOURCE_DIR/slurm/derive-job" "$LS_SOURCE_DIR/jobs/story-stories260K.json" "$1" ||
    fail "cannot derive a test job from jobs/story-stories260K.json"
  python3 - "$@" <<'PY' || fail "cannot write the test job $1"
import json, sys
out, limit, shards, bmax, windows, thresholds = sys.argv[1:7]
j = json.load(open(out))
j["limit"], j["shards"] = int(limit), int(shards)
j["budget"] = {"min": 0, "max": int(bmax)}
j["early_exit"] = {"windows": json.loads(windows), "thresholds": json.loads(thresholds)}
json.dump(j, open(out, "w"), indent=2)
PY
}

# h5attr FILE NAME: a root attribute's value (first DATA line), via h5dump.
h5attr() { h5dump -a "/$2" "$1" 2>/dev/null | sed -n 's/^ *(0): *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' | head -n 1; }

# need_h5py: sets PYH5 to a python3 that imports h5py (Debian python3-h5py), or fails.
need_h5py() {
  local p
  PYH5=
  for p in python3 /usr/bin/python3; do
    command -v "$p" >/dev/null 2>&1 && "$p" -c 'import h5py' 2>/dev/null && { PYH5=$p; return 0; }
  done
  fail "python3 with h5py (Debian python3-h5py) is needed to compare the stores"
}

# same_results DIR_A RUNS_A DIR_B RUNS_B: DIR_A and DIR_B (search output folders with
# results.h5 and schedule.json) evaluated the same candidates, none twice, with bit-identical
# per-candidate numbers (docs/hdf5-schema.md /candidates), and chose the same schedule.
# RUNS_X is the set of `run` values the rows of X must show, e.g. 0,1 for a run preempted
# once (some candidates evaluated before the preemption, some after) and 0 for one that
# never was. Needs need_h5py first.
same_results() {
  "$PYH5" - "$@" <<'PY' || fail "$1 and $3: results differ (see above)"
import json, sys
import h5py
import numpy as np

da, runs_a, db, runs_b = sys.argv[1:5]

def cands(d, want_runs):
    with h5py.File(f"{d}/results.h5", "r") as f:
        c = f["candidates"]
        ids = c["id"][:]
        cols = {k: c[k][:] for k in ("kind", "budget", "ee_window", "ee_threshold", "score",
                                     "predicted_ms", "meets_target")}
        run = c["run"][:]
        status = f.attrs["status"]
    status = status.decode() if isinstance(status, bytes) else str(status)
    assert status == "complete", f"{d}/results.h5: status {status}"
    assert len(set(ids.tolist())) == len(ids), f"{d}: a candidate was evaluated twice"
    want = {int(r) for r in want_runs.split(",")}
    got = set(run.tolist())
    assert got == want, f"{d}/results.h5: candidates from runs {sorted(got)}, want {sorted(want)}"
    o = np.argsort(ids)
    return ids[o], {k: v[o] for k, v in cols.items()}, run

ids_a, cols_a, run_a = cands(da, runs_a)
ids_b, cols_b, run_b = cands(db, runs_b)
assert ids_a.tolist() == ids_b.tolist(), (ids_a.tolist(), ids_b.tolist())
for k in cols_a:
    # Bit-identical: compare the bytes (NaN == NaN for candidates without a prediction).
    assert cols_a[k].tobytes() == cols_b[k].tobytes(), f"column {k} differs:\n{cols_a[k]}\n{cols_b[k]}"

def sched(d):
    s = json.load(open(f"{d}/schedule.json"))
    s.pop("provenance", None)
    s.pop("measured_latency_ms", None)  # wall time, differs run to run
    return s

sa, sb = sched(da), sched(db)
assert sa == sb, f"schedules differ:\n{json.dumps(sa, indent=1)}\n{json.dumps(sb, indent=1)}"
print(f"{da} vs {db}: same {len(ids_a)} candidates (runs {sorted(set(run_a.tolist()))} vs "
      f"{sorted(set(run_b.tolist()))}), same schedule {[s.get('skip', []) for s in sa['stages']]}")
PY
}

# jobs_from_here: ids of the jobs the controller knows (any state, for MinJobAge after they
# end) that were submitted from $WORK. Other tests may share the cluster: counting the whole
# queue would see their jobs come and go.
jobs_from_here() {
  scontrol -o show job 2>/dev/null | grep -F " WorkDir=$WORK " | sed -n 's/^JobId=\([0-9]*\).*/\1/p'
}
