# litestage-search's command line: --help on stdout with exit 0 for the program and every
# subcommand, every option explained, --version, unknown commands and options named,
# missing values named, --flag=value; a small real run driven with the long forms.
source "$(dirname "$0")/lib/search_lib.sh"
# expect_usage NAME NEEDLE ARGS...: exit 2, one stderr line containing NEEDLE, nothing on stdout
expect_usage() {
  local name=$1 needle=$2; shift 2
  set +e; "$S" "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ $rc = 2 ] || fail "$name: exit $rc, want 2"
  [ "$(wc -l <"$T/err")" = 1 ] || fail "$name: stderr: $(cat "$T/err")"
  grep -qF -- "$needle" "$T/err" || fail "$name: stderr lacks '$needle': $(cat "$T/err")"
  [ ! -s "$T/out" ] || fail "$name: wrote to stdout"
  echo "$name: $(cat "$T/err")"
}
"$S" --help >"$T/h" 2>"$T/e" || fail "--help exit"
[ ! -s "$T/e" ] && grep -q "usage: litestage-search COMMAND" "$T/h" || fail "--help not on stdout"
for c in validate run show export; do grep -q "^  $c " "$T/h" || fail "--help lacks $c"; done
"$S" -h >/dev/null || fail "-h exit"
"$S" --version >"$T/v" && grep -Eq "^litestage-search [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-z]+\)$" "$T/v" || fail "--version"
for c in validate run show export; do
  "$S" $c --help >"$T/h" 2>"$T/e" || fail "$c --help exit"
  [ ! -s "$T/e" ] && grep -q "^usage: litestage-search $c" "$T/h" || fail "$c --help not on stdout"
  python3 - "$T/h" <<'PY' || fail "$c --help: an option without a description"
import re, sys
lines = open(sys.argv[1]).read().split("\n")
for i, l in enumerate(lines):
    if not re.match(r"  -", l): continue
    m = re.match(r"  (-\S+(, --\S+)?( \S+)?)(\s{2,}(.*))?$", l)
    desc = m.group(5) or lines[i + 1].strip()
    assert len(desc.split()) >= 2, l
PY
done
"$S" run --help >"$T/h" && grep -q -- "--store FILE.h5" "$T/h" || fail "run --help lacks --store"
"$S" export --help >"$T/h" && grep -q -- "--candidate ID" "$T/h" || fail "export --help lacks --candidate"
set +e; "$S" >/dev/null 2>"$T/e"; rc=$?; set -e
[ $rc = 2 ] && grep -q "usage: litestage-search COMMAND" "$T/e" || fail "no command: exit $rc"
expect_usage "unknown command" "unknown command 'frobnicate'" frobnicate
expect_usage "unknown top-level option" "unknown option: --bogus" --bogus
expect_usage "run --store without a value" "--store needs a value" run "$LS_SOURCE_DIR/jobs/story-stories260K.json" --store
expect_usage "run unknown option" "unknown option: --stor" run "$LS_SOURCE_DIR/jobs/story-stories260K.json" --stor x.h5
expect_usage "run without a job" "missing JOB.json" run --quiet
expect_usage "run two jobs" "unexpected argument" run a.json b.json
expect_usage "export without -o" "missing -o" export x.h5
expect_usage "export bad --candidate" "--candidate '-3'" export x.h5 --candidate=-3 -o y.json
expect_usage "show without a file" "missing" show
expect_usage "run switch with a value" "--resume takes no value" run "$LS_SOURCE_DIR/jobs/story-stories260K.json" --resume=1
# -v adds where an error came from under the same one-line message
printf '{"model": ' >"$T/syntax.json"
set +e; "$S" validate "$T/syntax.json" 2>"$T/e1"; "$S" validate "$T/syntax.json" -v 2>"$T/e2"; set -e
[ "$(head -1 "$T/e2")" = "$(cat "$T/e1")" ] && grep -q "^  at common/ls_json.c:[0-9]* " "$T/e2" || fail "validate -v: $(cat "$T/e2")"
# ... before the subcommand as after it, for validate and run (run reads the job before MPI starts)
set +e; "$S" -v validate "$T/syntax.json" 2>"$T/e3"; "$S" run "$T/syntax.json" -v 2>"$T/e4"; "$S" --verbose run "$T/syntax.json" 2>"$T/e5"; set -e
cmp -s "$T/e3" "$T/e2" || fail "-v validate: $(cat "$T/e3")"
grep -q "^  at common/ls_json.c:[0-9]* " "$T/e4" && cmp -s "$T/e5" "$T/e4" || fail "--verbose run: $(cat "$T/e5") | $(cat "$T/e4")"
# the long forms drive a real run: a small job on 2 ranks, exported with --output=
small_job "$T/job.json" limit=2 shards=2 budget='{"min":0,"max":2}'
mpirun_ls -np 2 "$S" run "$T/job.json" --store="$T/s.h5" --quiet 2>"$T/run.log" || { cat "$T/run.log"; fail "run"; }
"$S" export "$T/s.h5" --output="$T/sched.json" || fail "export --output="
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert len(s['stages']) == 3" "$T/sched.json" || fail "schedule"
"$S" show "$T/s.h5" >"$T/show.txt" || fail "show exit"
grep -q "^candidates (" "$T/show.txt" || fail "show: no candidates table"
rm -rf "$T"
echo ok
