# Bad job specs fail with a message naming the job file and the key, before any MPI work
# (no "world size" line, no store), both with `validate` and with `run` under mpirun.
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/good.json" limit=8 shards=4
"$S" validate "$T/good.json" >"$T/v.out" || fail "good job rejected"
grep -q "ok: 5 layers (10 sub-layers), 3 stages, 8 examples" "$T/v.out" || { cat "$T/v.out"; fail "validate summary"; }
: >"$T/empty.txt"
check() { # name, expected message part, edits...
  local name=$1 want=$2; shift 2
  small_job "$T/$name.json" "$@"
  if "$S" validate "$T/$name.json" 2>"$T/$name.err"; then fail "$name: validate accepted it"; fi
  grep -q "$T/$name.json" "$T/$name.err" || { cat "$T/$name.err"; fail "$name: message does not name the job"; }
  grep -q -- "$want" "$T/$name.err" || { cat "$T/$name.err"; fail "$name: message lacks '$want'"; }
  set +e; mpirun_ls -np 2 "$S" run "$T/$name.json" --store "$T/$name.h5" >"$T/$name.out" 2>&1; rc=$?; set -e
  [ $rc -ne 0 ] || fail "$name: run succeeded"
  if grep -q "world size" "$T/$name.out"; then fail "$name: MPI work started"; fi
  [ ! -e "$T/$name.h5" ] || fail "$name: a store was created"
  echo "$name: $(head -1 "$T/$name.err")"
}
check missing_model 'key "model"' 'model="/nonexistent/model.bin"'
check missing_dataset 'key "dataset"' 'dataset={"path":"/nonexistent/d.txt","format":"stories"}'
check unknown_objective 'key "objective": unknown value "speed"' 'objective="speed"'
check empty_dataset 'key "dataset"' "dataset={\"path\":\"$T/empty.txt\",\"format\":\"stories\"}"
check budget_beyond 'key "budget.max": 11 is beyond the model' 'budget={"min":0,"max":11}'
check unknown_strategy 'key "strategy"' 'strategy="random"'
check bad_key 'unknown key "tolerence"' 'tolerence=0.1'
check accuracy_story 'needs answers' 'objective="accuracy"'
printf '{"model": ' >"$T/syntax.json"
if "$S" validate "$T/syntax.json" 2>"$T/syntax.err"; then fail "syntax error accepted"; fi
grep -q "$T/syntax.json" "$T/syntax.err" || fail "syntax: message does not name the file"
rm -rf "$T"
echo ok
