# h5dump of a store shows the groups, datasets and attributes documented in docs/hdf5-schema.md,
# and show/export work on it.
source "$(dirname "$0")/lib/search_lib.sh"
small_job "$T/job.json" limit=4 shards=2 'budget={"min":0,"max":2}' 'early_exit={"windows":[4],"thresholds":[0.3]}'
"$S" run "$T/job.json" --store "$T/s.h5" --quiet 2>"$T/log" || { cat "$T/log"; fail run; }
h5dump -H "$T/s.h5" >"$T/h"
for a in schema_version model_fingerprint model_name job_json job_hash job_path commit hosts ranks threads \
         library_versions start_time end_time status runs n_stages n_layers n_examples n_shards objective strategy; do
  grep -q "ATTRIBUTE \"$a\"" "$T/h" || fail "root attribute $a missing"
done
for g in importance reference candidates pareto; do grep -q "GROUP \"$g\"" "$T/h" || fail "group /$g missing"; done
for d in per_stage_cos accumulated_cos ranking per_stage_ranking sublayer_names \
         score measured_ms predicted_ms prompt_tokens gen_tokens answer gold stage_order example_id \
         id kind budget skip_mask ee_window ee_threshold meets_target run round candidate_id scores schedule stage_names; do
  grep -q "DATASET \"$d\"" "$T/h" || fail "dataset $d missing"
done
# candidate table: chunked, extendible, deflate-compressed
h5dump -p -H -d /candidates/score "$T/s.h5" >"$T/p"
grep -q "H5S_UNLIMITED" "$T/p" || fail "candidates not extendible"
grep -q "CHUNKED" "$T/p" || fail "candidates not chunked"
grep -q "DEFLATE" "$T/p" || fail "candidates not deflate-compressed"
h5dump -p -H -d /scores "$T/s.h5" | grep -q DEFLATE || fail "scores not compressed"
[ "$(h5dump -H -d /candidates/skip_mask "$T/s.h5" | grep -c 'H5T_STD_U8LE')" = 1 ] || fail "skip_mask is not uint8"
grep -q "$(sha256sum "$LS_DATA_DIR/models/stories260K/stories260K.bin" | cut -c1-64)" "$T/h" || \
  h5dump -a /model_fingerprint "$T/s.h5" | grep -q "$(sha256sum "$LS_DATA_DIR/models/stories260K/stories260K.bin" | cut -c1-64)" || fail "fingerprint"
"$S" show "$T/s.h5" >"$T/show" || fail show
for w in "importance (most redundant first)" "candidates (" "Pareto front" "chosen schedule"; do grep -q "$w" "$T/show" || fail "show lacks $w"; done
"$S" export "$T/s.h5" -o "$T/sched.json" || fail export
"$S" export "$T/s.h5" --candidate 1 -o "$T/c1.json" || fail "export --candidate"
python3 - "$T/sched.json" "$T/c1.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert [s["name"] for s in a["stages"]] == ["beginning", "middle", "end"], a["stages"]
assert b["provenance"]["candidate_id"] == 1 if "provenance" in b else True
PY
if "$S" export "$T/s.h5" --candidate 999 -o "$T/x.json" 2>"$T/e"; then fail "export of a missing candidate"; fi
grep -q "no such candidate" "$T/e" || fail "export error message"
if command -v "$LS_RUN" >/dev/null 2>&1; then
  "$LS_RUN" pipeline --help >/dev/null 2>&1 || true
fi
rm -rf "$T"
echo ok
