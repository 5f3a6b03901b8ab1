# The search's bookkeeping, read back from its progress lines and its store:
# - candidate ids are 0..N-1 without gaps (greedy's repeated base candidate takes no id), and
#   `export --candidate ID` works for every one of them;
# - the progress total is the number of distinct candidates ("N/N done" at the end);
# - "best so far" after each candidate is the best (lowest latency, then lowest id) of every
#   candidate reported until then that meets the target, including those finished earlier in
#   the same round;
# - after a stop signal the round line counts only the units that were done ("K of M units").
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/job.json" limit=4 shards=2 'budget={"min":0,"max":2}' 'early_exit={"windows":[4],"thresholds":[0.3]}'
"$S" run "$T/job.json" --store "$T/s.h5" 2>"$T/log" || { cat "$T/log"; fail run; }
h5num "$T/s.h5" /candidates/id >"$T/ids"
n=$(wc -l <"$T/ids")
[ "$(sort -n "$T/ids" | tr '\n' ' ')" = "$(seq 0 $((n - 1)) | tr '\n' ' ')" ] ||
  fail "candidate ids are not 0..$((n - 1)): $(tr '\n' ' ' <"$T/ids")"
for ((id = 0; id < n; id++)); do
  "$S" export "$T/s.h5" --candidate $id -o "$T/c.json" 2>"$T/e" || { cat "$T/e"; fail "export --candidate $id"; }
done
for d in score predicted_ms measured_ms meets_target; do h5num "$T/s.h5" /candidates/$d >"$T/$d"; done
python3 - "$T" "$n" <<'PY' || { cat "$T/log"; fail "progress lines"; }
import re, sys
T, n = sys.argv[1], int(sys.argv[2])
col = lambda d: [float(x) for x in open(f"{T}/{d}")]
ids = [int(x) for x in open(f"{T}/ids")]
pred, meets = col("predicted_ms"), col("meets_target")
cand = {i: (pred[k], meets[k] == 1) for k, i in enumerate(ids)}
seen = []
lines = [l for l in open(f"{T}/log") if l.startswith("litestage-search: candidate #")]
assert len(lines) == n, f"{len(lines)} progress lines for {n} candidates"
for l in lines:
    m = re.match(r"litestage-search: candidate #(\d+) .*\| (\d+)/(\d+) done, .* best so far (none yet|#(\d+))", l)
    assert m, l
    seen.append(int(m.group(1)))
    done, total = int(m.group(2)), int(m.group(3))
    assert total == n, f"progress total {total}, but the search has {n} distinct candidates: {l}"
    assert done == len(seen), l
    ok = [i for i in seen if cand[i][1]]
    want = min(ok, key=lambda i: (cand[i][0], i)) if ok else None
    got = int(m.group(5)) if m.group(5) else None
    assert got == want, f"best so far #{got}, want #{want} (of {seen}): {l}"
assert len(set(seen)) == n
PY

# a stop in the middle of a round: its round line counts the units done, not all of them
small_job "$T/big.json" limit=6 shards=3 'budget={"min":0,"max":5}'
touch "$T/hold"  # the search waits before candidate #2 until the signal (search/evaluate.c)
LS_SEARCH_TEST_HOLD="2:$T/hold" "$S" run "$T/big.json" --store "$T/b.h5" 2>"$T/b.log" &
pid=$!
for i in $(seq 1 30000); do  # up to ~300 s: the held search cannot end first
  grep -q 'litestage-search: candidate #' "$T/b.log" && break
  sleep 0.01
done
kill -USR1 $pid
rm -f "$T/hold"
set +e; wait $pid; rc=$?; set -e
[ $rc = 3 ] || { cat "$T/b.log"; fail "stopped run: exit $rc, want 3"; }
line=$(grep 'litestage-search: round 0 ' "$T/b.log") || { cat "$T/b.log"; fail "no round line after the stop"; }
[[ "$line" =~ ([0-9]+)\ of\ ([0-9]+)\ units ]] || fail "the stopped round claims all its units: $line"
done_units=${BASH_REMATCH[1]} all_units=${BASH_REMATCH[2]}
stored=$(h5num "$T/b.h5" /candidates/id | wc -l)
[ "$done_units" -lt "$all_units" ] && [ "$done_units" -ge $((stored * 3)) ] ||
  fail "round line says $done_units of $all_units units with $stored candidates (3 units each) stored"
rm -rf "$T"
echo ok
