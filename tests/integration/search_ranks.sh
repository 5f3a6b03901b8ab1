# mpirun -np 1, 2 and 3 (oversubscribed) give bit-identical candidate scores, per-example score
# matrices, predicted latencies and importance statistics, and the same chosen schedule; the store
# records the ranks. Under the default KV policy (reuse) and under shared-prefix, where a stage is
# scored on the earlier stages' cache (a shard's examples run together from an empty cache).
source "$(dirname "$0")/lib/search_lib.sh"
for policy in reuse shared-prefix; do
small_job "$T/job.json" limit=6 shards=3 'budget={"min":0,"max":4}' 'early_exit={"windows":[4],"thresholds":[0.3]}' \
  "kv_policy=\"$policy\""
rm -f "$T"/np*
for n in 1 2 3; do
  mpirun_ls -np $n "$S" run "$T/job.json" --store "$T/np$n.h5" --quiet 2>"$T/np$n.log" || { cat "$T/np$n.log"; fail "np $n"; }
  grep -q "litestage-search: world size $n" "$T/np$n.log" || fail "np $n: no world size line"
  [ "$(h5attr "$T/np$n.h5" /ranks)" = "$n" ] || fail "np $n: ranks attribute"
  [ "$(h5attr "$T/np$n.h5" /status)" = '"complete"' ] || fail "np $n: status"
  "$S" export "$T/np$n.h5" -o "$T/np$n.sched.json"
done
for ds in /importance/accumulated_cos /importance/per_stage_cos /importance/ranking /candidates/id /candidates/score /candidates/predicted_ms /candidates/gen_tokens /scores /pareto/candidate_id; do
  h5num "$T/np1.h5" $ds >"$T/a"
  [ -s "$T/a" ] || fail "$ds empty"
  for n in 2 3; do h5num "$T/np$n.h5" $ds >"$T/b"; cmp -s "$T/a" "$T/b" || fail "$ds differs between np 1 and np $n ($policy)"; done
done
for n in 2 3; do
  [ "$(h5attr "$T/np1.h5" /schedule/candidate_id)" = "$(h5attr "$T/np$n.h5" /schedule/candidate_id)" ] || fail "chosen candidate differs (np $n)"
  python3 - "$T/np1.sched.json" "$T/np$n.sched.json" "$policy" <<'PY' || fail "exported schedules differ (np $n, $policy)"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["stages"] == b["stages"], (a["stages"], b["stages"])
assert a["achieved_score"] == b["achieved_score"]
assert a["kv_policy"] == sys.argv[3], a.get("kv_policy")
PY
done
done
rm -rf "$T"
echo ok
