# Exhaustive never picks a schedule slower than greedy's at the same target, and it evaluates
# more candidates (the benchmark reports the counts).
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/g.json" limit=4 shards=2 'budget={"min":0,"max":3}' 'early_exit=null' tolerance=0.15
small_job "$T/e.json" limit=4 shards=2 'budget={"min":0,"max":3}' 'early_exit=null' tolerance=0.15 'strategy="exhaustive"'
mpirun_ls -np 2 "$S" run "$T/g.json" --store "$T/g.h5" --quiet 2>"$T/g.log" || { cat "$T/g.log"; fail greedy; }
mpirun_ls -np 2 "$S" run "$T/e.json" --store "$T/e.h5" --quiet 2>"$T/e.log" || { cat "$T/e.log"; fail exhaustive; }
python3 - "$T" <<'PY'
import json, subprocess, sys
t = sys.argv[1]
def sched(f):
    out = subprocess.run([__import__("os").environ["LS_SEARCH"], "export", f, "-o", f + ".json"], check=True)
    return json.load(open(f + ".json"))
g, e = sched(t + "/g.h5"), sched(t + "/e.h5")
assert g["target"] == e["target"], (g["target"], e["target"])
print("greedy", g["predicted_latency_ms"], g["achieved_score"], "exhaustive", e["predicted_latency_ms"], e["achieved_score"])
assert e["predicted_latency_ms"] <= g["predicted_latency_ms"], "exhaustive slower than greedy"
assert e["achieved_score"] >= e["target"] and g["achieved_score"] >= g["target"]
PY
ng=$(h5num "$T/g.h5" /candidates/id | wc -l); ne=$(h5num "$T/e.h5" /candidates/id | wc -l)
[ "$ne" = 64 ] || fail "exhaustive evaluated $ne candidates, want 4^3 = 64"
[ "$ng" -le 12 ] || fail "greedy evaluated $ng candidates, want <= 3 x 4"
echo "greedy $ng candidates, exhaustive $ne"
rm -rf "$T"
echo ok
