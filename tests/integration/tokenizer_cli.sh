#!/usr/bin/env bash
# litestage-run tokenize and inspect on BPE vocabularies and the qwen2 / Llama 3 models:
# ids as llama.cpp gives them (tests/data/tokenizer/*.expected), the tokenizer kind and
# pre-tokenizer shown, and one-line errors naming the file for what is not supported.
set -euo pipefail
: "${LS_RUN:?LS_RUN must name litestage-run}"
D="$LS_SOURCE_DIR/tests/data"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# the first expected line with special-token text, for each vocabulary
for v in llama-bpe qwen2 gpt-2 smollm default; do
  line=$(grep -m1 "^$(printf '<|im_start|>' | od -An -tx1 | tr -d ' \n')" "$D/tokenizer/$v.expected")
  printf '%s' "$(cut -f1 <<<"$line")" | python3 -c "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read()))" >"$T/text"
  want=$(cut -f3 <<<"$line" | sed 's/ /, /g')
  [ "$(cut -f2 <<<"$line")" = 1 ] || fail "$v: fixture line order"
  got=$("$LS_RUN" tokenize -m "$D/tokenizer/ggml-vocab-$v.gguf" -f "$T/text" --ids)
  [ "$got" = "[$want]" ] || fail "$v: got $got, llama.cpp [$want]"
done

out=$("$LS_RUN" inspect "$D/archs/qwen2-tiny.gguf")
grep -q "^architecture:   qwen2" <<<"$out" || fail "inspect qwen2: architecture"
grep -q "^tokenizer:      BPE, pre-tokenizer qwen2 (qwen2)" <<<"$out" || fail "inspect qwen2: tokenizer"
grep -q "classifier: tied" <<<"$out" || fail "inspect qwen2: classifier"
out=$("$LS_RUN" inspect "$D/archs/llama3-tiny.gguf")
grep -q "^tokenizer:      BPE, pre-tokenizer llama-bpe (llama-bpe)" <<<"$out" || fail "inspect llama3: tokenizer"
grep -q "rope scaling: per-frequency divisors (Llama 3), 1 .. 8" <<<"$out" || fail "inspect llama3: rope"
grep -q "classifier: output.weight" <<<"$out" || fail "inspect llama3: classifier"

# unsupported architecture and pre-tokenizer: exit 1, one line naming the file
set +e
"$LS_RUN" generate -m "$D/tokenizer/ggml-vocab-gpt-2.gguf" -p hi 2>"$T/err" >/dev/null; rc=$?
set -e
[ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "ggml-vocab-gpt-2.gguf: architecture 'gpt2' is not supported" "$T/err" \
  || { cat "$T/err"; fail "unsupported architecture"; }
python3 "$D/tokenizer/retag_pre.py" "$D/tokenizer/ggml-vocab-gpt-2.gguf" "$T/tekken.gguf" tekken
set +e
"$LS_RUN" tokenize -m "$T/tekken.gguf" -p hi 2>"$T/err" >/dev/null; rc=$?
set -e
[ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "tekken.gguf: tokenizer.ggml.pre 'tekken' is not supported" "$T/err" \
  || { cat "$T/err"; fail "unsupported pre-tokenizer"; }
echo ok
