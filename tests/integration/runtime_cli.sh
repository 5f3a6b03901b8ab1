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
expect_error "bad --weights" "--weights 'disk': expected copy or map" "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --weights disk
# --weights: the same text from the file mapping and from the copy, and generate says which it used
for w in map copy; do
  "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" -n 200 --weights "$w" >"$tmp/w-$w.txt" 2>"$tmp/w-$w.err"
  cmp -s "$tmp/w-$w.txt" "$M/expected-greedy-empty-n200.txt" && ok "golden with --weights $w" || bad "golden with --weights $w differs"
done
grep -q "^weights: .*read from the file mapping" "$tmp/w-map.err" && ok "--weights map maps" || bad "--weights map: $(tail -1 "$tmp/w-map.err")"
grep -q "^weights: .*copied into anonymous huge-page memory" "$tmp/w-copy.err" && ok "--weights copy copies" || bad "--weights copy: $(tail -1 "$tmp/w-copy.err")"
expect_error "bad --skip" "--skip" "$RUN" generate -m "$M/stories260K.bin" -z "$M/tok512.bin" --skip L9.attn
expect_error "unknown flag" "--bogus" "$RUN" generate -m "$M/stories260K.bin" --bogus 1
expect_error "unknown command" "frobnicate" "$RUN" frobnicate
head -c 5000 "$M/stories260K.bin" >"$tmp/trunc.bin"
expect_error "truncated model" "trunc.bin" "$RUN" generate -m "$tmp/trunc.bin" -z "$M/tok512.bin"
expect_error "missing dataset" "/nonexistent.jsonl" "$RUN" pipeline -m "$M/stories260K.bin" -z "$M/tok512.bin" --stages "$S" --data /nonexistent.jsonl
"$RUN" generate --help | grep -q "usage: litestage-run generate" && ok "--help" || bad "--help"
# --out that cannot be written fails before any example runs (one line, in well under a run's time)
"$RUN" "${common[@]}" --limit 50 --out /nonexistent/x.jsonl >"$tmp/o.out" 2>"$tmp/o.err"
[[ $? -eq 1 && $(wc -l <"$tmp/o.err") -eq 1 ]] && grep -q "/nonexistent/x.jsonl.tmp.[0-9]*: cannot create" "$tmp/o.err" \
  && ! grep -q "examples" "$tmp/o.out" && ok "--out checked before any work" || bad "--out unwritable: $(cat "$tmp/o.err")"
# --out to a pipe is written through (not renamed over), one line per example
"$RUN" "${common[@]}" --out /dev/stdout 2>/dev/null | grep -c '^{' >"$tmp/o.n"
[[ $(cat "$tmp/o.n") -eq 3 ]] && ok "--out /dev/stdout written through" || bad "--out /dev/stdout: $(cat "$tmp/o.n") lines"
[[ -z $(ls "$tmp"/*.tmp.* 2>/dev/null) ]] && ok "no temporary files left" || bad "temporary files left: $(ls "$tmp"/*.tmp.*)"

# 4. llama.cpp habits
GEN=(generate -m "$M/stories260K.bin" -z "$M/tok512.bin")
"$RUN" generate --model="$M/stories260K.bin" --tokenizer="$M/tok512.bin" --n-predict=200 --threads=2 >"$tmp/long.txt" 2>/dev/null
cmp -s "$tmp/long.txt" "$M/expected-greedy-empty-n200.txt" && ok "--flag=value and long names" || bad "--flag=value output differs"
"$RUN" "${GEN[@]}" --steps 200 >"$tmp/steps.txt" 2>/dev/null
cmp -s "$tmp/steps.txt" "$M/expected-greedy-empty-n200.txt" && ok "--steps 200 (llama2.c's -n) with no prompt" || bad "--steps differs"
# -n counts new tokens whatever the prompt; --steps counts positions from BOS
"$RUN" "${GEN[@]}" -p "Lily and Ben" -n 12 >"$tmp/n12.txt" 2>"$tmp/n12.err" || bad "-n 12 failed"
grep -q "^decode: 12 tokens" "$tmp/n12.err" && ok "-n 12 generates 12 new tokens" || bad "-n 12: $(cat "$tmp/n12.err")"
np=$(sed -n 's/^prefill: \([0-9]*\) tokens.*/\1/p' "$tmp/n12.err")
"$RUN" "${GEN[@]}" -p "Lily and Ben" --steps $((np + 11)) >"$tmp/s12.txt" 2>"$tmp/s12.err"
[[ $np -gt 1 ]] && cmp -s "$tmp/n12.txt" "$tmp/s12.txt" && grep -q "^decode: 12 tokens" "$tmp/s12.err" \
  && ok "--steps $((np + 11)) = -n 12 for a $np-token prompt" || bad "--steps vs -n: np=$np $(cat "$tmp/s12.err")"
"$RUN" "${GEN[@]}" -p "Lily and Ben" -n 0 >"$tmp/n0.txt" 2>"$tmp/n0.err"
[[ "$(cat "$tmp/n0.txt")" == "Lily and Ben" ]] && ! grep -q "^decode" "$tmp/n0.err" && ok "-n 0 prints the prompt only" \
  || bad "-n 0: $(cat "$tmp/n0.txt")"
# -f reads the prompt from a file (one trailing newline dropped)
printf 'Lily and Ben\n' >"$tmp/prompt.txt"
"$RUN" "${GEN[@]}" -f "$tmp/prompt.txt" -n 12 >"$tmp/f12.txt" 2>/dev/null
cmp -s "$tmp/n12.txt" "$tmp/f12.txt" && ok "-f FILE = -p TEXT" || bad "-f output differs"
# --top-k 1 is greedy at any temperature; a fixed seed repeats; -s -1 picks and prints one
"$RUN" "${GEN[@]}" -n 40 --temp 1.5 --top-k 1 -s 3 >"$tmp/k1.txt" 2>/dev/null
"$RUN" "${GEN[@]}" -n 40 >"$tmp/greedy40.txt" 2>/dev/null
cmp -s "$tmp/k1.txt" "$tmp/greedy40.txt" && ok "--top-k 1 = greedy" || bad "--top-k 1 differs from greedy"
"$RUN" "${GEN[@]}" -n 40 --temp 1 --top-k 5 -s 7 >"$tmp/k5a.txt" 2>/dev/null
"$RUN" "${GEN[@]}" -n 40 --temp 1 --top-k 5 -s 7 >"$tmp/k5b.txt" 2>/dev/null
cmp -s "$tmp/k5a.txt" "$tmp/k5b.txt" && ! cmp -s "$tmp/k5a.txt" "$tmp/greedy40.txt" && ok "--seed 7 repeats, sampling differs from greedy" \
  || bad "seeded sampling"
"$RUN" "${GEN[@]}" -n 40 --temp 1 -s -1 >"$tmp/r.txt" 2>"$tmp/r.err"
seed=$(sed -n 's/^seed: \([0-9]*\)$/\1/p' "$tmp/r.err")
"$RUN" "${GEN[@]}" -n 40 --temp 1 -s "$seed" >"$tmp/r2.txt" 2>/dev/null
[[ -n $seed ]] && cmp -s "$tmp/r.txt" "$tmp/r2.txt" && ok "-s -1 prints a seed that reproduces the text" || bad "-s -1: $(cat "$tmp/r.err")"
expect_error "unknown option says so" "unknown option: --bogus" "$RUN" "${GEN[@]}" --bogus
expect_error "unknown --flag=value" "unknown option: --bogus" "$RUN" "${GEN[@]}" --bogus=3
expect_error "missing value" "--top-k needs a value" "$RUN" "${GEN[@]}" --top-k
expect_error "bad --top-k=" "--top-k" "$RUN" "${GEN[@]}" --top-k=-2
expect_error "-n and --steps" "--steps" "$RUN" "${GEN[@]}" -n 5 --steps 5
expect_error "-p and -f" "-f" "$RUN" "${GEN[@]}" -p x -f "$tmp/prompt.txt"
expect_error "-f missing file" "/nonexistent.txt" "$RUN" "${GEN[@]}" -f /nonexistent.txt
expect_error "switch with a value" "--tensors" "$RUN" inspect "$M/stories260K.bin" --tensors=1
expect_error "unknown top-level option" "unknown option: --bogus" "$RUN" --bogus
# -v: the same first line, then where the error came from, innermost frame first
"$RUN" "${GEN[@]/$M\/stories260K.bin/$tmp/trunc.bin}" -v >/dev/null 2>"$tmp/v.err"
"$RUN" "${GEN[@]/$M\/stories260K.bin/$tmp/trunc.bin}" >/dev/null 2>"$tmp/nov.err"
if [[ $(head -1 "$tmp/v.err") == "$(cat "$tmp/nov.err")" ]] && sed -n 2p "$tmp/v.err" | grep -q "^  at formats/llama2c.c:[0-9]* " \
  && grep -q "^  at cli/cmd_generate.c:[0-9]* run$" "$tmp/v.err" && [[ $(grep -c "^  at " "$tmp/v.err") -ge 3 ]]; then
  ok "-v traces the error: $(sed -n '2,$p' "$tmp/v.err" | tr '\n' '<' | sed 's/  at //g')"
else
  bad "-v trace: $(cat "$tmp/v.err")"
fi
# the model load names its own frame under the reader's, for generate (through the engine) and inspect
"$RUN" -v inspect "$tmp/trunc.bin" >/dev/null 2>"$tmp/vi.err"
if grep -q "^  at formats/llama2c.c:[0-9]* ls_model_load_llama2c$" "$tmp/v.err" \
  && grep -q "^  at engine/model.c:[0-9]* ls_model_load_placed$" "$tmp/v.err" \
  && head -1 "$tmp/vi.err" | grep -qF "$tmp/trunc.bin: truncated" \
  && grep -q "^  at engine/model.c:[0-9]* ls_model_load_placed$" "$tmp/vi.err"; then
  ok "-v shows the model load's frame"
else
  bad "-v model load frame: $(cat "$tmp/v.err") | $(cat "$tmp/vi.err")"
fi
# -v before the subcommand is the same -v
"$RUN" -v "${GEN[@]/$M\/stories260K.bin/$tmp/trunc.bin}" >/dev/null 2>"$tmp/v0.err"
"$RUN" --verbose "${GEN[@]/$M\/stories260K.bin/$tmp/trunc.bin}" >/dev/null 2>"$tmp/v1.err"
cmp -s "$tmp/v0.err" "$tmp/v.err" && cmp -s "$tmp/v1.err" "$tmp/v.err" && ok "-v / --verbose before generate: the same trace" \
  || bad "-v before generate: $(cat "$tmp/v0.err") | $(cat "$tmp/v1.err")"
# every option in every --help has a line that says what it does
for c in generate pipeline profile inspect convert synth; do
  "$RUN" $c --help >"$tmp/h.txt" 2>&1 || bad "$c --help exit"
  python3 - "$tmp/h.txt" <<'PY' && ok "$c --help: every option explained" || bad "$c --help has an option without a description"
import re, sys
lines = open(sys.argv[1]).read().split("\n")
opts = [i for i, l in enumerate(lines) if re.match(r"  -", l)]
assert opts, "no options listed"
for i in opts:
    m = re.match(r"  (-\S+(, --\S+)?( \S+)?)(\s{2,}(.*))?$", lines[i])
    assert m, lines[i]
    desc = m.group(5) or (lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith(" " * 20) else "")
    assert len(desc.split()) >= 2, lines[i]
PY
done
# convert --help lists every type it accepts, and accepts every type it lists
types=$("$RUN" convert --help | tr '\n' ' ' | sed -n 's/.*one of *\([a-z0-9_, ]*\) (default.*/\1/p' | tr -d ' ' | tr ',' ' ')
n=0
for ty in $types; do
  "$RUN" convert "$M/stories260K.bin" -z "$M/tok512.bin" -o "$tmp/t.gguf" --type "$ty" 2>/dev/null \
    && "$RUN" generate -m "$tmp/t.gguf" -n 4 >/dev/null 2>&1 && n=$((n + 1)) || bad "convert --type $ty"
done
listed=$("$RUN" convert x -o y --type nope 2>&1 | sed -n 's/.*expected one of \(.*\) (see.*/\1/p' | tr -d ' ' | tr ',' ' ')
[[ $n -ge 5 && "$listed" == "$(echo $types)" ]] && ok "convert --help lists the $n types it accepts: $types" \
  || bad "convert types: help '$types', error '$listed', $n converted"

[[ $fails -eq 0 ]] && echo "runtime_cli: all checks passed" || echo "runtime_cli: $fails check(s) failed"
exit $((fails > 0))
