# Store failures: a store path in a missing or read-only folder, a missing store for --resume
# and an existing one without it are refused in one line before MPI starts or the model loads
# (no "world size" line, no HDF5 trace, no "stop signal" line); a refused --resume leaves no
# FILE.work behind. The disk filling up during `run` (the store on a small tmpfs, filled while
# the search runs; skipped without mount rights): exit 1 with one "No space left on device" line,
# no crash, and once space is freed the store resumes to the same candidates as a run that had
# room.
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/job.json" limit=4 shards=2 'budget={"min":0,"max":3}'
small_job "$T/other.json" limit=3 shards=1 'budget={"min":0,"max":1}'

# one_line LOG PATTERN: exactly one line, matching PATTERN, before MPI
one_line() {
  [ "$(wc -l <"$1")" = 1 ] || { cat "$1"; fail "$2: $(wc -l <"$1") lines, want 1"; }
  grep -q -- "$2" "$1" || { cat "$1"; fail "message does not say: $2"; }
}
expect_fail() { # LOG ARGS...: exit 1
  local log=$1 rc; shift
  set +e; "$S" "$@" 2>"$log" >/dev/null; rc=$?; set -e
  [ $rc = 1 ] || { cat "$log"; fail "$*: exit $rc, want 1"; }
}
expect_fail "$T/e1" run "$T/job.json" --store "$T/no/such/dir/s.h5"
one_line "$T/e1" "$T/no/such/dir/s.h5: the folder $T/no/such/dir does not exist"
set +e; mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/no/such/dir/s.h5" >/dev/null 2>"$T/e1m"; set -e
[ "$(grep -c 'litestage-search' "$T/e1m")" = 1 ] || { cat "$T/e1m"; fail "2 ranks: not one line for a missing folder"; }
expect_fail "$T/e2" run "$T/job.json" --store "$T/absent.h5" --resume
one_line "$T/e2" "$T/absent.h5: --resume: no such store"
mkdir -p "$T/ro"
if mount -t tmpfs -o ro,size=64k tmpfs "$T/ro" 2>/dev/null; then
  expect_fail "$T/e3" run "$T/job.json" --store "$T/ro/s.h5"
  umount "$T/ro"
  one_line "$T/e3" "$T/ro/s.h5: cannot create files in $T/ro: Read-only file system"
else
  echo "no mount rights: the read-only folder case is not run"
fi

# a refused --resume (another job's store) leaves no FILE.work
"$S" run "$T/other.json" --store "$T/o.h5" --quiet 2>"$T/o.log" || { cat "$T/o.log"; fail "other job"; }
expect_fail "$T/e4" run "$T/job.json" --store "$T/o.h5" --resume
grep -q "different job" "$T/e4" || { cat "$T/e4"; fail "resume of another job's store not refused"; }
[ ! -e "$T/o.h5.work" ] || fail "a refused --resume left $T/o.h5.work behind"
expect_fail "$T/e5" run "$T/job.json" --store "$T/o.h5"
one_line "$T/e5" "store exists; use --resume"

# disk full during the run
mkdir -p "$T/mnt"
if ! mount -t tmpfs -o size=4m tmpfs "$T/mnt" 2>/dev/null; then
  echo "cannot mount a tmpfs: the disk-full case is skipped"; rm -rf "$T"; exit 77
fi
trap 'umount "$T/mnt" 2>/dev/null; rm -rf "$T"' EXIT
mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/full.h5" --quiet 2>"$T/full.log" || { cat "$T/full.log"; fail "full run"; }
# the ranks wait before candidate #2 until the disk is full (LS_SEARCH_TEST_HOLD, search/evaluate.c)
touch "$T/hold"
LS_SEARCH_TEST_HOLD="2:$T/hold" setsid mpirun --oversubscribe -x LS_SEARCH_TEST_HOLD -np 2 "$S" run "$T/job.json" \
  --store "$T/mnt/s.h5" 2>"$T/d.log" &
pid=$!
for i in $(seq 1 30000); do  # up to ~300 s: the held search cannot end first
  grep -q 'litestage-search: candidate #' "$T/d.log" && break
  sleep 0.01
done
# fill the disk: every later commit finds no room
dd if=/dev/zero of="$T/mnt/filler" bs=64k status=none 2>/dev/null || true
rm -f "$T/hold"
set +e; wait $pid; rc=$?; set -e
grep -v '^--\|^Primary job\|^a non-zero exit\|^Per user-direction\|^mpirun detected\|^the job to be\|^  Process name\|^  Exit code\|^$' "$T/d.log" |
  grep -v 'litestage-search: \(world size\|reference\|importance\|candidate #\|round\)' >"$T/d.err" || true
[ $rc = 1 ] || { cat "$T/d.log"; fail "disk full: exit $rc, want 1"; }
one_line "$T/d.err" "No space left on device"
grep -q "$T/mnt/s.h5" "$T/d.err" || fail "disk-full line does not name the store"
grep -q "stop signal\|Segmentation\|HDF5-DIAG" "$T/d.log" && { cat "$T/d.log"; fail "disk full: a crash, an HDF5 trace or a stop-signal line"; }
# free the space: the store resumes and ends as the run that had room
rm -f "$T/mnt/filler"
before=$(h5num "$T/mnt/s.h5" /candidates/id | wc -l)
mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/mnt/s.h5" --resume --quiet 2>"$T/r.log" || { cat "$T/r.log"; fail "resume after disk full"; }
[ ! -e "$T/mnt/s.h5.work" ] || fail "FILE.work left after the resumed run"
for d in id score predicted_ms budget; do
  cmp -s <(h5num "$T/full.h5" /candidates/$d | sort) <(h5num "$T/mnt/s.h5" /candidates/$d | sort) ||
    fail "resumed store differs from the full run in /candidates/$d"
done
echo "disk full after $before committed candidates; resumed to $(h5num "$T/mnt/s.h5" /candidates/id | wc -l)"
echo ok
