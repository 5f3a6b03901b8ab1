# The shipped QA job smoke variants run on the bundled model; `accuracy` on a model that cannot
# answer questions stops at chance level with exit status 4 and says so.
source "$(dirname "$0")/lib/search_lib.sh"
for t in obqa strategyqa; do
  mpirun_ls -np 2 "$S" run "$LS_SOURCE_DIR/jobs/$t-tinythinker-smoke.json" --store "$T/$t.h5" --quiet 2>"$T/$t.log" || { cat "$T/$t.log"; fail "$t smoke"; }
  "$S" export "$T/$t.h5" -o "$T/$t.sched.json" || fail "$t export"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert [x['name'] for x in s['stages']]==['recall','analyze','summarize'], s" "$T/$t.sched.json"
done
python3 - "$LS_SOURCE_DIR/jobs/obqa-tinythinker-smoke.json" "$T/acc.json" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1])); base = os.path.dirname(sys.argv[1])
for k in ("model", "tokenizer", "template", "latency"): j[k] = os.path.normpath(os.path.join(base, j[k]))
j["dataset"]["path"] = os.path.normpath(os.path.join(base, j["dataset"]["path"]))
j["objective"] = "accuracy"; j["limit"] = 8
json.dump(j, open(sys.argv[2], "w"))
PY
set +e; "$S" run "$T/acc.json" --store "$T/acc.h5" --quiet 2>"$T/acc.log"; rc=$?; set -e
[ $rc = 4 ] || { cat "$T/acc.log"; fail "accuracy at chance: exit $rc, want 4"; }
grep -q "at chance level" "$T/acc.log" || fail "no chance-level message"
[ "$(h5attr "$T/acc.h5" /status)" = '"chance-level"' ] || fail "store status"
[ "$(h5num "$T/acc.h5" /candidates/id | wc -l)" = 0 ] || fail "candidates were evaluated at chance level"
rm -rf "$T"
echo ok
