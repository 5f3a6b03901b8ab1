#!/usr/bin/env bash
# litestage-run end to end: the golden greedy text from the .bin and from its
# GGUF conversions, the random GGUF generating, pipeline with schedules, and
# bad input giving one-line errors that name the file or flag.
set -uo pipefail
RUN=${LS_RUN:?LS_RUN not set}
D=${LS_DATA_DIR:?LS_DATA_DIR not set}
M=$D/models/stories260K
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect_error NAME NEEDLE CMD...: non-zero exit, exactly one stderr line, containing NEEDLE
expect_error() {
  local name=$1 needle=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [[ $rc -ne 0 && $lines -eq 1 ]] && grep -qF -- "$needle" "$tmp/err"; then
    ok "$name: $(cat "$tmp/err")"
  else
    bad "$name: rc=$rc lines=$lines stderr: $(head -c 400 "$tmp/err")"
  fi
}

# 1. golden text, exactly as llama2.c prints it
"$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -n 200 >"$tmp/bin.txt" 2>/dev/null
cmp -s "$tmp/bin.txt" "$M/expected-greedy-empty-n200.txt" && ok "golden from .bin" || bad "golden from .bin differs"
"$RUN" convert "$M/stories260K.bin" -z "$M/tok512.bin" -o "$tmp/s.gguf" --type f32 2>/dev/null || bad "convert f32"
"$RUN" generate -m "$tmp/s.gguf" -n 200 >"$tmp/gguf.txt" 2>/dev/null
cmp -s "$tmp/gguf.txt" "$M/expected-greedy-empty-n200.txt" && ok "golden from converted GGUF" || bad "golden from GGUF differs"
for t in 2 3; do
  "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -n 200 -t $t >"$tmp/t$t.txt" 2>/dev/null
  cmp -s "$tmp/t$t.txt" "$M/expected-greedy-empty-n200.txt" && ok "golden with -t $t" || bad "golden with -t $t differs"
done
# stderr reports speeds
"$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -n 50 2>"$tmp/speed" >/dev/null
grep -q "decode: .* tokens/s" "$tmp/speed" && grep -q "prefill: .* tokens/s" "$tmp/speed" && ok "speed lines" || bad "no speed lines"
# skipping changes the text and says how many sub-layers ran
"$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -n 60 --skip L1.attn,L2.ffn,L3.ffn >"$tmp/skip.txt" 2>"$tmp/skip.err"
grep -q "sub-layers executed 7/10" "$tmp/skip.err" && ok "skip reports 7/10" || bad "skip report: $(cat "$tmp/skip.err")"
# the random GGUF from ollama loads and generates tokens
"$RUN" generate -m "$D/models/tiny-random-gguf/llama-2-tiny-random.gguf" -p "Hello" -n 20 >"$tmp/rand.txt" 2>"$tmp/rand.err" \
  && grep -q "decode: " "$tmp/rand.err" && ok "random GGUF generates" || bad "random GGUF: $(cat "$tmp/rand.err")"

# 2. pipeline with schedules
S=$D/templates/story.json
STORIES=$D/corpora/tinystories_val_subset.txt
common=(pipeline -m "$M/stories260K.bin" -z "$M/tok512.bin" --stages "$S" --data "$STORIES" --format stories --limit 3 -q)
"$RUN" "${common[@]}" --out "$tmp/full.jsonl" >"$tmp/full.sum" 2>&1 || bad "pipeline full: $(cat "$tmp/full.sum")"
[[ $(wc -l <"$tmp/full.jsonl") -eq 3 ]] && ok "pipeline writes one line per example" || bad "pipeline jsonl lines"
fp=$(sha256sum "$M/stories260K.bin" | cut -d' ' -f1)
cat >"$tmp/sched.json" <<JSON
{"schema_version": 1, "model": {"name": "stories260K", "fingerprint": "$fp"},
 "template": {"name": "story"},
 "stages": [{"name": "beginning", "skip": ["L1.attn", "L2.ffn"], "early_exit": {"window": 0, "threshold": 0}},
            {"name": "middle", "skip": ["L3.attn"], "early_exit": {"window": 4, "threshold": 0.2}},
            {"name": "end", "skip": [], "early_exit": {"window": 0, "threshold": 0}}]}
JSON
"$RUN" "${common[@]}" --schedule "$tmp/sched.json" --out "$tmp/s.jsonl" --compare-full >"$tmp/s.sum" 2>&1 \
  && grep -q "speedup" "$tmp/s.sum" && ok "pipeline with schedule and --compare-full" || bad "pipeline schedule: $(cat "$tmp/s.sum")"
python3 - "$tmp/s.jsonl" <<'PY' && ok "per-stage sub-layers executed follow the schedule" || bad "sublayers_executed"
import json, sys
for line in open(sys.argv[1]):
    ex = json.loads(line)
    got = [s["sublayers_executed"] for s in ex["stages"]]
    assert got == [8, 9, 10], got
    assert 0.0 <= ex["token_agreement"] <= 1.0
PY
sed "s/$fp/$(printf '0%.0s' {1..64})/" "$tmp/sched.json" >"$tmp/wrongfp.json"
expect_error "fingerprint mismatch" "wrongfp.json" "$RUN" "${common[@]}" --schedule "$tmp/wrongfp.json"
"$RUN" "${common[@]}" --schedule "$tmp/wrongfp.json" --ignore-fingerprint >/dev/null 2>&1 && ok "--ignore-fingerprint" || bad "--ignore-fingerprint"
sed 's/"L3.attn"/"L7.attn"/' "$tmp/sched.json" >"$tmp/nolayer.json"
expect_error "layer the model lacks" "L7" "$RUN" "${common[@]}" --schedule "$tmp/nolayer.json"
sed 's/"middle"/"muddle"/' "$tmp/sched.json" >"$tmp/stages.json"
expect_error "stages differ from template" "stages.json" "$RUN" "${common[@]}" --schedule "$tmp/stages.json"
printf '{"schema_version": 1, "stages": [' >"$tmp/broken.json"
expect_error "malformed schedule JSON" "broken.json" "$RUN" "${common[@]}" --schedule "$tmp/broken.json"

# 3. bad input and flags
expect_error "missing model" "/nonexistent.bin" "$RUN" generate -m /nonexistent.bin -z "$M/tok512.bin"
expect_error "missing tokenizer" "tokenizer" "$RUN" generate -m "$M/stories260K.bin"
expect_error "bad -n" "-n" "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -n abc
expect_error "bad --temp" "--temp" "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --temp -1
expect_error "bad --skip" "--skip" "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --skip L9.attn
expect_error "unknown flag" "--bogus" "$RUN" generate -m "$M/stories260K.bin" --bogus 1
expect_error "unknown command" "frobnicate" "$RUN" frobnicate
head -c 5000 "$M/stories260K.bin" >"$tmp/trunc.bin"
expect_error "truncated model" "trunc.bin" "$RUN" generate -m "$tmp/trunc.bin" -z "$M/tok512.bin"
expect_error "missing dataset" "/nonexistent.jsonl" "$RUN" pipeline -m "$M/stories260K.bin" -z "$M/tok512.bin" --stages "$S" --data /nonexistent.jsonl
"$RUN" generate --help | grep -q "usage: litestage-run generate" && ok "--help" || bad "--help"

[[ $fails -eq 0 ]] && echo "runtime_cli: all checks passed" || echo "runtime_cli: $fails check(s) failed"
exit $((fails > 0))
