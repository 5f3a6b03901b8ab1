# `show` and `export` treat a store as untrusted input. Stores crafted with h5py whose
# attributes disagree with their datasets (n_stages / n_layers larger or smaller than the data,
# absurd or array-valued attributes), whose datasets have the wrong shape, whose importance
# ranking is out of range, or which have a zeroed 4 KiB region: each is refused with exit 1 and
# one stderr line naming the store (and the dataset or attribute), printing nothing, or (a
# zeroed region HDF5 never reads) shown in full; never a crash, never exit 0 with the candidate
# table dropped or a wrong schedule. Also: export writes normalised paths ("jobs/../data/..."
# becomes "data/..."), writes through to a pipe behind a link (as /dev/stdout is) instead of
# renaming over the link, and names the store in its errors.
source "$(dirname "$0")/lib/search_lib.sh"
PY=/usr/bin/python3
$PY -c "import h5py, numpy" 2>/dev/null || { echo "python3-h5py missing: skip"; rm -rf "$T"; exit 77; }

# a job with paths relative to its folder that pass through ".." (jobs/../data/...)
mkdir -p "$T/jobs"
ln -s "$LS_SOURCE_DIR/data" "$T/data"
ln -s "$LS_SOURCE_DIR/jobs/profiles" "$T/jobs/profiles"
python3 - "$LS_SOURCE_DIR/jobs/story-stories260K.json" "$T/jobs/job.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j.update(limit=4, shards=2, budget={"min": 0, "max": 2}, early_exit={"windows": [4], "thresholds": [0.3]})
json.dump(j, open(sys.argv[2], "w"), indent=1)
PY
(cd "$T" && "$S" run jobs/job.json --store good.h5 --quiet 2>run.log) || { cat "$T/run.log"; fail run; }
G="$T/good.h5"
n_good=$(h5num "$G" /candidates/id | wc -l)
[ "$n_good" -ge 3 ] || fail "the search stored $n_good candidates"

# export: normalised paths, the store named as results file
(cd "$T" && "$S" export good.h5 -o sched.json) || fail export
python3 - "$T/sched.json" <<'PY' || fail "export wrote unnormalised paths"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["template"]["path"] == "data/templates/story.json", s["template"]
assert s["provenance"]["job"] == "jobs/job.json", s["provenance"]
PY
# export through a link to our stdout, a pipe: written through, the link stays a link
ln -s /proc/self/fd/1 "$T/stdout-link"
"$S" export "$G" -o "$T/stdout-link" | cat >"$T/piped.json" || fail "export to a link to a pipe"
[ -L "$T/stdout-link" ] || fail "export replaced the link to stdout with a file"
cmp -s "$T/piped.json" "$T/sched.json" || fail "export through the pipe wrote something else"
# export's errors name the store
if "$S" export "$T/missing.h5" -o "$T/x.json" 2>"$T/e"; then fail "export of a missing store"; fi
grep -q "$T/missing.h5" "$T/e" || { cat "$T/e"; fail "export error does not name the store"; }
if "$S" export "$G" -o "$T/no/such/dir/x.json" 2>"$T/e"; then fail "export into a missing folder"; fi
grep -q "$T/no/such/dir/x.json" "$T/e" || { cat "$T/e"; fail "export error does not name the output"; }

# (a candidate table of 2^20 rows with no chunk written, a Pareto front of 2^40 entries: refused
# before anything is allocated)
# refused CASE PATTERN: show and export --candidate 1 both exit 1 with one line naming the store
# and matching PATTERN, and show prints nothing.
refused() {
  local f="$T/$1.h5" pat=$2 rc
  for cmd in show export; do
    set +e
    if [ $cmd = show ]; then "$S" show "$f" >"$T/out" 2>"$T/err"; else "$S" export "$f" --candidate 1 -o "$T/$1.json" >"$T/out" 2>"$T/err"; fi
    rc=$?
    set -e
    [ $rc = 1 ] || { cat "$T/err"; fail "$1: $cmd exit $rc, want 1"; }
    [ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err"; fail "$1: $cmd printed $(wc -l <"$T/err") error lines"; }
    grep -q "$f" "$T/err" || { cat "$T/err"; fail "$1: $cmd error does not name the store"; }
    grep -q -- "$pat" "$T/err" || { cat "$T/err"; fail "$1: $cmd error does not say $pat"; }
    [ ! -s "$T/out" ] || fail "$1: $cmd printed a partial table"
    [ ! -e "$T/$1.json" ] || fail "$1: export wrote a schedule"
  done
}

# craft NAME PYTHON: a copy of the good store edited by PYTHON (h5py file f, numpy np)
craft() {
  cp "$G" "$T/$1.h5"
  $PY - "$T/$1.h5" "$2" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+")
exec(sys.argv[2])
f.close()
PY
}

craft more_stages    'f.attrs["n_stages"] = np.int64(5)'
refused more_stages  "/reference/gen_tokens: shape \[4\]\[3\], but the store.s attributes say \[4\]\[5\]"
craft fewer_stages   'f.attrs["n_stages"] = np.int64(2)'
refused fewer_stages "/reference/gen_tokens"
craft more_layers    'f.attrs["n_layers"] = np.int64(9)'
refused more_layers  "/importance/ranking"
craft more_layers2   'f.attrs["n_layers"] = np.int64(9); del f["importance/ranking"]'
refused more_layers2 "/candidates/skip_mask"
craft fewer_layers   'f.attrs["n_layers"] = np.int64(2); del f["importance"]["ranking"]'
refused fewer_layers "/candidates/skip_mask"
craft huge_stages    'f.attrs["n_stages"] = np.int64(1 << 40)'
refused huge_stages  "n_stages"
craft neg_layers     'f.attrs["n_layers"] = np.int64(-3)'
refused neg_layers   "n_layers"
craft array_attr     'f.attrs["n_stages"] = np.array([3, 3, 3, 3], dtype="i8")'
refused array_attr   "n_stages"
craft str_attr       'f.attrs["n_examples"] = np.bytes_(b"4")'
refused str_attr     "n_examples"
craft rank_range     'r = f["importance/ranking"]; v = r[...]; v[0] = 999; r[...] = v'
refused rank_range   "/importance/ranking"
craft rank_neg       'r = f["importance/ranking"]; v = r[...]; v[3] = -1; r[...] = v'
refused rank_neg     "/importance/ranking"
craft budget_shape   'n = f["candidates/id"].shape[0]; del f["candidates/budget"]; f["candidates/budget"] = np.zeros((n, 7), "i4")'
refused budget_shape "/candidates/budget"
craft rows_differ    'del f["candidates/score"]; f["candidates/score"] = np.zeros(2, "f8")'
refused rows_differ  "/candidates/score"
craft mask_1d        'del f["candidates/skip_mask"]; f["candidates/skip_mask"] = np.zeros(10, "u1")'
refused mask_1d      "/candidates/skip_mask"
craft sched_many     'del f["schedule"]; f["schedule"] = np.array([b"{}", b"{}", b"{}"], dtype="S4000")'
refused sched_many   "/schedule"
craft sched_vlen     'del f["schedule"]; f.create_dataset("schedule", (1,), dtype=h5py.string_dtype())'
refused sched_vlen   "/schedule"
craft names_many     'del f["stage_names"]; f["stage_names"] = np.array([b"a"] * 7, dtype="S8")'
refused names_many   "/stage_names"
craft ref_shape      'del f["reference/gen_tokens"]; f["reference/gen_tokens"] = np.zeros((4, 9), "i4")'
refused ref_shape    "/reference/gen_tokens"
craft pareto_long    'del f["pareto/candidate_id"]; f["pareto/candidate_id"] = np.arange(1000, dtype="i8")'
refused pareto_long  "/pareto/candidate_id"
craft no_cands       'del f["candidates/id"]'
refused no_cands     "/candidates/id"
craft rows_unstored  'del f["candidates/id"]; f.create_dataset("candidates/id", (1 << 20,), dtype="i8", chunks=(64,), compression="gzip")'
refused rows_unstored "/candidates/id: 1048576 rows, but only"
craft pareto_huge    'del f["pareto/candidate_id"]; f.create_dataset("pareto/candidate_id", (1 << 40,), dtype="i8", chunks=(64,))'
refused pareto_huge  "/pareto/candidate_id: 1099511627776 entries"

# zeroed 4 KiB regions: refused in one line naming the store, or shown whole; never exit 0
# without the candidate table, never a crash.
size=$(stat -c %s "$G")
refusals=0
for ((off = 0; off < size; off += 4096)); do
  cp "$G" "$T/z.h5"
  dd if=/dev/zero of="$T/z.h5" bs=4096 seek=$((off / 4096)) count=1 conv=notrunc status=none
  set +e
  "$S" show "$T/z.h5" >"$T/out" 2>"$T/err"
  rc=$?
  set -e
  if [ $rc = 0 ]; then
    grep -q "^candidates ($n_good):" "$T/out" || fail "zeroed at $off: show exit 0 without the $n_good candidates"
    [ "$(sed -n "/^candidates ($n_good):/,/^\$/p" "$T/out" | grep -c '^  [0-9]')" = "$n_good" ] ||
      fail "zeroed at $off: show exit 0 with a short candidate table"
  else
    [ $rc = 1 ] || { cat "$T/err"; fail "zeroed at $off: show exit $rc"; }
    [ "$(wc -l <"$T/err")" = 1 ] && grep -q "$T/z.h5" "$T/err" || { cat "$T/err"; fail "zeroed at $off: not one line naming the store"; }
    refusals=$((refusals + 1))
  fi
done
[ $refusals -gt 0 ] || fail "no zeroed region was noticed"
echo "zeroed regions: $refusals of $(((size + 4095) / 4096)) refused, the rest shown whole"
rm -rf "$T"
echo ok
