# SIGKILL of the whole job midway (in the middle of a round), then --resume: no finished candidate
# lost by the kill, the same candidates, scores and schedule as an uninterrupted run; no candidate
# id twice; the resumed run evaluated only what was missing.
# Also: a different job on the same store is refused, and SIGUSR1 ends a run with status 3.
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/job.json" limit=6 shards=3 'budget={"min":0,"max":5}'
mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/full.h5" --quiet 2>"$T/full.log" || { cat "$T/full.log"; fail "full run"; }
total=$(h5num "$T/full.h5" /candidates/id | wc -l)
# killed run: its own session so that the kill reaches mpirun and every rank at once. Progress
# lines ("candidate #ID ...") are printed after the candidate was committed; the kill lands in the
# middle of the first round (6 candidates), after its 3rd finished candidate.
# (LS_SEARCH_TEST_HOLD, search/evaluate.c: the ranks wait before candidate #3 until the kill, so
# that it cannot come after the end of a search this fast)
touch "$T/hold"
LS_SEARCH_TEST_HOLD="3:$T/hold" setsid mpirun --oversubscribe -x LS_SEARCH_TEST_HOLD -np 2 "$S" run "$T/job.json" \
  --store "$T/k.h5" 2>"$T/k.log" &
pid=$!
# setsid makes the search its own session (sid = its pid) only once the child has run it: read
# too early, the sid is this test's session, and the kill below would reach every test ctest
# runs beside this one (a search_smoke run failed that way)
sid=
for i in $(seq 1 1000); do
  [ "$(ps -o sid= -p $pid 2>/dev/null | tr -d ' ')" = "$pid" ] && { sid=$pid; break; }
  sleep 0.01
done
[ -n "$sid" ] || fail "the killed run did not become its own session (setsid)"
for i in $(seq 1 30000); do  # up to ~300 s: the held search cannot end first
  [ "$(grep -c 'litestage-search: candidate #' "$T/k.log")" -ge 3 ] && break
  sleep 0.01
done
kill -KILL -- -"$sid" 2>/dev/null || true
wait $pid 2>/dev/null || true
# every rank of that session gone (a rank outliving mpirun could still commit)
for i in $(seq 1 100); do pgrep -s "$sid" >/dev/null || break; pkill -KILL -s "$sid" 2>/dev/null || true; sleep 0.1; done
before=$(h5num "$T/k.h5" /candidates/id | wc -l)
[ "$before" -ge 1 ] && [ "$before" -lt "$total" ] || fail "kill landed outside the run ($before of $total candidates)"
h5dump -H "$T/k.h5" >/dev/null || fail "killed store does not open"
# a kill loses at most the candidates in flight, never a finished one: every candidate reported
# finished is in the store (committed per candidate, not per round: the kill came mid-round).
# (More may be stored than reported: a line still in mpirun's output forwarding is lost.)
sed -n 's/^litestage-search: candidate #\([0-9]*\) .*/\1/p' "$T/k.log" | sort >"$T/k.reported"
h5num "$T/k.h5" /candidates/id | sort >"$T/k.stored"
[ -s "$T/k.reported" ] || { cat "$T/k.log"; fail "the killed run reported no finished candidate"; }
missing=$(comm -23 "$T/k.reported" "$T/k.stored" | tr '\n' ' ')
[ -z "$missing" ] || { cat "$T/k.log"; fail "finished candidates lost by the kill: $missing (stored: $(tr '\n' ' ' <"$T/k.stored"))"; }
echo "killed after $(wc -l <"$T/k.reported") reported, $before stored of $total candidates"
[ "$(h5num "$T/k.h5" /scores | wc -l)" = $((before * 6)) ] || fail "killed store: /scores rows do not match the $before candidates"
mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/k.h5" --resume 2>"$T/r.log" || { cat "$T/r.log"; fail "resume"; }
grep -q "resuming .*: $before finished candidates" "$T/r.log" || { cat "$T/r.log"; fail "resume did not load $before candidates"; }
# the resumed run evaluated exactly the candidates the killed one had not finished
sed -n 's/^litestage-search: candidate #\([0-9]*\) .*/\1/p' "$T/r.log" | sort >"$T/r.evaluated"
[ -z "$(comm -12 "$T/k.stored" "$T/r.evaluated")" ] || fail "resume re-evaluated finished candidates: $(comm -12 "$T/k.stored" "$T/r.evaluated" | tr '\n' ' ')"
[ "$(wc -l <"$T/r.evaluated")" = $((total - before)) ] || fail "resume evaluated $(wc -l <"$T/r.evaluated") candidates, want $((total - before))"
h5num "$T/k.h5" /candidates/id | sort -n >"$T/ids"
[ "$(sort -un "$T/ids" | wc -l)" = "$(wc -l <"$T/ids")" ] || fail "a candidate id appears twice"
[ "$(wc -l <"$T/ids")" = "$total" ] || fail "resumed store has $(wc -l <"$T/ids") candidates, want $total"
# rows in id order must match the uninterrupted run
for d in id score predicted_ms budget run; do
  h5num "$T/full.h5" /candidates/$d >"$T/full.$d"
  h5num "$T/k.h5" /candidates/$d >"$T/k.$d"
done
python3 - "$T" "$before" <<'PY' || fail "resumed results differ"
import sys
t, before = sys.argv[1], int(sys.argv[2])
rd = lambda p: open(p).read().split()
ia, ib = rd(t + "/full.id"), rd(t + "/k.id")
for d in ("score", "predicted_ms", "budget"):
    ca, cb = rd(t + "/full." + d), rd(t + "/k." + d)
    w = len(ca) // len(ia)
    ra = {ia[i]: ca[i*w:(i+1)*w] for i in range(len(ia))}
    rb = {ib[i]: cb[i*w:(i+1)*w] for i in range(len(ib))}
    assert ra == rb, d
runs = rd(t + "/k.run")
assert runs.count("0") == before and runs.count("1") == len(runs) - before, runs
PY
[ "$(h5attr "$T/full.h5" /schedule/candidate_id)" = "$(h5attr "$T/k.h5" /schedule/candidate_id)" ] || fail "chosen candidate differs after resume"
[ "$(h5attr "$T/k.h5" /runs)" = 2 ] || fail "runs attribute"
# a different job on the same store is refused
small_job "$T/other.json" limit=6 shards=3 tolerance=0.2 'budget={"min":0,"max":5}'
if "$S" run "$T/other.json" --store "$T/k.h5" --resume 2>"$T/o.log"; then fail "a different job resumed the store"; fi
grep -q "different job" "$T/o.log" || { cat "$T/o.log"; fail "no clear message for a different job"; }
# an existing store is not overwritten without --resume/--force
if "$S" run "$T/job.json" --store "$T/k.h5" 2>"$T/e.log"; then fail "overwrote a store"; fi
grep -q "store exists" "$T/e.log" || fail "no message for an existing store"
# SIGUSR1: finish the units in flight, commit, exit 3; then resume to the same result
touch "$T/hold"  # the search waits before candidate #2 until the signal
LS_SEARCH_TEST_HOLD="2:$T/hold" "$S" run "$T/job.json" --store "$T/u.h5" --quiet 2>"$T/u.log" &
pid=$!
for i in $(seq 1 3000); do  # up to ~300 s (held)
  [ -f "$T/u.h5" ] && [ "$(h5num "$T/u.h5" /candidates/id 2>/dev/null | wc -l)" -ge 1 ] && break
  sleep 0.1
done
kill -USR1 $pid
rm -f "$T/hold"
set +e; wait $pid; rc=$?; set -e
[ $rc = 3 ] || { cat "$T/u.log"; fail "SIGUSR1 exit status $rc, want 3"; }
[ "$(h5attr "$T/u.h5" /status)" = '"interrupted"' ] || fail "status after SIGUSR1"
"$S" run "$T/job.json" --store "$T/u.h5" --resume --quiet 2>>"$T/u.log" || fail "resume after SIGUSR1"
[ "$(h5attr "$T/full.h5" /schedule/candidate_id)" = "$(h5attr "$T/u.h5" /schedule/candidate_id)" ] || fail "schedule differs after SIGUSR1 + resume"
rm -rf "$T"
echo ok
