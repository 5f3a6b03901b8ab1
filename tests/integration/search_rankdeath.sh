# A rank that dies (SIGKILL, as a crashed node) ends the job with a clear error (non-zero exit,
# the dead rank named) and leaves a store that opens and holds only complete candidates.
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/job.json" limit=6 shards=3 'budget={"min":0,"max":6}'
set +e
LS_SEARCH_TEST_DIE=1:8 timeout 300 mpirun --oversubscribe -x LS_SEARCH_TEST_DIE -np 2 "$S" run "$T/job.json" --store "$T/d.h5" --quiet >"$T/d.log" 2>&1
rc=$?
set -e
cat "$T/d.log"
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "exit status $rc (0 = not detected, 124 = hung)"
grep -q "rank 1" "$T/d.log" || fail "the dead rank is not named"
grep -Eq "signal 9|Killed|died" "$T/d.log" || fail "no clear reason"
h5dump -H "$T/d.h5" >/dev/null || fail "store does not open"
n_ids=$(h5num "$T/d.h5" /candidates/id | wc -l)
n_rows=$(h5dump -H -d /scores "$T/d.h5" | sed -n 's/.*DATASPACE *SIMPLE { ( \([0-9]*\),.*/\1/p')
[ "$n_ids" = "$n_rows" ] || fail "candidate rows $n_ids != score rows $n_rows"
[ "$(h5attr "$T/d.h5" /status)" != '"complete"' ] || fail "the rank died after the search ended"
# every stored candidate is complete: a resume finishes the search from there
mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/d.h5" --resume --quiet 2>"$T/r.log" || { cat "$T/r.log"; fail "resume after a rank died"; }
[ "$(h5attr "$T/d.h5" /status)" = '"complete"' ] || fail "resume did not complete"
rm -rf "$T"
echo ok
