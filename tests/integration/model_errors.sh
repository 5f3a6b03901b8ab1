#!/usr/bin/env bash
# litestage-run on bad model files: a non-zero exit and exactly one line on
# stderr that names the file. Usage errors exit 2, runtime errors exit 1.
set -u
: "${LS_RUN:?LS_RUN must name litestage-run}"
: "${LS_DATA_DIR:?LS_DATA_DIR must name the data directory}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
n=0

# expect_error WANT_RC PATH_IN_MESSAGE CMD...
expect_error() {
  local want=$1 named=$2
  shift 2
  n=$((n + 1))
  "$@" >"$T/out" 2>"$T/err"
  local rc=$? lines
  lines=$(wc -l <"$T/err")
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $* exited $rc, expected $want; stderr: $(cat "$T/err")"
    fail=1
  elif [ "$lines" -ne 1 ]; then
    echo "FAIL: $*: $lines lines on stderr, expected 1:"
    cat "$T/err"
    fail=1
  elif ! grep -qF -- "$named" "$T/err"; then
    echo "FAIL: $*: stderr does not name $named: $(cat "$T/err")"
    fail=1
  elif ! grep -q "^litestage-run " "$T/err"; then
    echo "FAIL: $*: stderr does not start with the program name: $(cat "$T/err")"
    fail=1
  fi
}

# patch FILE OFFSET PRINTF-BYTES
patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
offset_of() { grep -obUaF -- "$2" "$1" | head -1 | cut -d: -f1; }

BIN="$LS_DATA_DIR/models/stories260K/stories260K.bin"
TOK="$LS_DATA_DIR/models/stories260K/tok512.bin"
GOOD="$T/good.gguf"
"$LS_RUN" synth -o "$GOOD" --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 300 --type q8_0 2>"$T/err" \
  || { echo "FAIL: synth: $(cat "$T/err")"; exit 1; }
"$LS_RUN" inspect "$GOOD" >"$T/out" 2>"$T/err" || { echo "FAIL: inspect of a good model: $(cat "$T/err")"; exit 1; }
grep -q "n_layers 2" "$T/out" || { echo "FAIL: inspect output lacks the config"; fail=1; }
grep -q "fingerprint:    sha256:[0-9a-f]\{64\}" "$T/out" || { echo "FAIL: inspect output lacks the fingerprint"; fail=1; }
# -m names the model as llama.cpp users type it; a vocabulary-only GGUF gets its tokenizer, exit 0
"$LS_RUN" inspect -m "$GOOD" >"$T/out-m" 2>"$T/err" || { echo "FAIL: inspect -m: $(cat "$T/err")"; fail=1; }
grep -q "n_layers 2" "$T/out-m" || { echo "FAIL: inspect -m output lacks the config"; fail=1; }
VOCAB="${LS_SOURCE_DIR:?}/tests/data/tokenizer/ggml-vocab-qwen2.gguf"
if "$LS_RUN" inspect "$VOCAB" >"$T/out" 2>"$T/err"; then
  grep -q "^tensors: *none (a vocabulary-only file" "$T/out" || { echo "FAIL: vocab-only inspect lacks 'tensors: none'"; fail=1; }
  grep -q "^tokenizer: *BPE, pre-tokenizer qwen2" "$T/out" || { echo "FAIL: vocab-only inspect lacks the BPE tokenizer"; fail=1; }
  grep -q "^vocabulary: *151936 tokens" "$T/out" || { echo "FAIL: vocab-only inspect lacks the vocabulary size"; fail=1; }
else
  echo "FAIL: inspect of a vocabulary-only GGUF: $(cat "$T/err")"; fail=1
fi
size=$(stat -c %s "$GOOD")

# truncated GGUF at many offsets, through the header, metadata, tensor infos and data
for off in 0 1 3 4 7 8 15 16 23 24 31 40 64 100 200 500 1000 2000 4000 6000 8000 \
           $((size / 4)) $((size / 2)) $((size - 100)) $((size - 1)); do
  head -c "$off" "$GOOD" >"$T/trunc-$off.gguf"
  expect_error 1 "$T/trunc-$off.gguf" "$LS_RUN" inspect "$T/trunc-$off.gguf"
done

# wrong magic
cp "$GOOD" "$T/magic.gguf"; patch "$T/magic.gguf" 0 'GGUX'
expect_error 1 "$T/magic.gguf" "$LS_RUN" inspect "$T/magic.gguf"
# absurd key-value and tensor counts
cp "$GOOD" "$T/nkv.gguf"; patch "$T/nkv.gguf" 16 '\xff\xff\xff\xff\xff\xff\xff\x7f'
expect_error 1 "$T/nkv.gguf" "$LS_RUN" inspect "$T/nkv.gguf"
cp "$GOOD" "$T/ntensors.gguf"; patch "$T/ntensors.gguf" 8 '\x00\x00\x00\x00\x01\x00\x00\x00'
expect_error 1 "$T/ntensors.gguf" "$LS_RUN" inspect "$T/ntensors.gguf"
# huge string length (the first key)
cp "$GOOD" "$T/strlen.gguf"; patch "$T/strlen.gguf" 24 '\xff\xff\xff\xff\xff\xff\xff\xff'
expect_error 1 "$T/strlen.gguf" "$LS_RUN" inspect "$T/strlen.gguf"
# bad alignment (48 is not a power of two)
a=$(offset_of "$GOOD" general.alignment)
cp "$GOOD" "$T/align.gguf"; patch "$T/align.gguf" $((a + 17 + 4)) '\x30'
expect_error 1 "$T/align.gguf" "$LS_RUN" inspect "$T/align.gguf"
# tensor info of blk.0.attn_k.weight: name (19 bytes), n_dims, ne[0], ne[1], type, offset
k=$(offset_of "$GOOD" blk.0.attn_k.weight)
type_off=$((k + 19 + 4 + 16))
cp "$GOOD" "$T/type.gguf"; patch "$T/type.gguf" "$type_off" '\x63\x00\x00\x00'
expect_error 1 "$T/type.gguf" "$LS_RUN" inspect "$T/type.gguf"
grep -q "blk.0.attn_k.weight' has unknown type 99" "$T/err" || { echo "FAIL: unknown type message: $(cat "$T/err")"; fail=1; }
cp "$GOOD" "$T/past.gguf"; patch "$T/past.gguf" $((type_off + 4)) '\x00\x00\x00\x00\x01\x00\x00\x00'
expect_error 1 "$T/past.gguf" "$LS_RUN" inspect "$T/past.gguf"
grep -q "past the end" "$T/err" || { echo "FAIL: past-the-end message: $(cat "$T/err")"; fail=1; }
cp "$GOOD" "$T/misaligned.gguf"; patch "$T/misaligned.gguf" $((type_off + 4)) '\x08'
expect_error 1 "$T/misaligned.gguf" "$LS_RUN" inspect "$T/misaligned.gguf"
# absurd dimension
cp "$GOOD" "$T/dim.gguf"; patch "$T/dim.gguf" $((k + 19 + 4 + 8)) '\x00\x00\x00\x00\x00\x00\x00\x40'
expect_error 1 "$T/dim.gguf" "$LS_RUN" inspect "$T/dim.gguf"

# llama2.c checkpoints and tokenizers
for off in 0 10 27 28 100 1000 $((1056540 / 2)) 1056539; do
  head -c "$off" "$BIN" >"$T/trunc-$off.bin"
  expect_error 1 "$T/trunc-$off.bin" "$LS_RUN" inspect "$T/trunc-$off.bin"
done
head -c 3000 "$TOK" >"$T/tok-trunc.bin"
expect_error 1 "$T/tok-trunc.bin" "$LS_RUN" inspect "$BIN" -z "$T/tok-trunc.bin"
expect_error 1 "$T/missing-tok.bin" "$LS_RUN" inspect "$BIN" -z "$T/missing-tok.bin"
expect_error 1 "$T/nonexistent.gguf" "$LS_RUN" inspect "$T/nonexistent.gguf"
expect_error 1 "$T/trunc-1000.bin" "$LS_RUN" convert "$T/trunc-1000.bin" -z "$TOK" -o "$T/out.gguf"
[ -e "$T/out.gguf" ] && { echo "FAIL: convert left an output file"; fail=1; }
expect_error 1 "$BIN" "$LS_RUN" convert "$BIN" -o "$T/out.gguf"
expect_error 1 "$T/no/such/dir/x.gguf" "$LS_RUN" synth -o "$T/no/such/dir/x.gguf" --dim 64 --layers 1 --heads 4 --ffn 64 --vocab 300

# the per-tensor type mix of a llama-quantize Q4_K_M file, and a tensor type the engine lacks:
# one line naming the file, the tensor and the type (inspect prints the header first, then stops)
KQ="$LS_DATA_DIR/models/llamacpp-fixtures/models/rand256-q4_k_m.gguf"
"$LS_RUN" inspect "$KQ" >"$T/out" 2>"$T/err" || { echo "FAIL: inspect $KQ: $(cat "$T/err")"; fail=1; }
grep -q "^types: *F32 x9, Q4_K x25, Q6_K x5$" "$T/out" || { echo "FAIL: inspect $KQ: no type mix line"; fail=1; }
cp "$KQ" "$T/iq4xs.gguf"
name_at=$(offset_of "$T/iq4xs.gguf" "blk.1.ffn_down.weight")
# tensor info: name, n_dims (u32), ne[2] (u64 each), then the type (u32): 23 = IQ4_XS (136-byte blocks, fits)
patch "$T/iq4xs.gguf" $((name_at + 21 + 4 + 16)) '\x17'
expect_error 1 "$T/iq4xs.gguf: tensor blk.1.ffn_down.weight has type IQ4_XS (23)" "$LS_RUN" inspect "$T/iq4xs.gguf"
expect_error 1 "$T/iq4xs.gguf: tensor blk.1.ffn_down.weight has type IQ4_XS (23)" \
  "$LS_RUN" generate -m "$T/iq4xs.gguf" -p "Once" -n 4

# usage errors: exit 2, one line naming the flag
expect_error 2 "MODEL" "$LS_RUN" inspect
expect_error 2 "--bogus" "$LS_RUN" inspect --bogus "$GOOD"
expect_error 2 "--dim" "$LS_RUN" synth -o "$T/x.gguf" --dim abc --layers 1 --heads 4 --ffn 64 --vocab 300
expect_error 2 "--vocab" "$LS_RUN" synth -o "$T/x.gguf" --dim 64 --layers 1 --heads 4 --ffn 64
expect_error 2 "--type" "$LS_RUN" synth -o "$T/x.gguf" --dim 64 --layers 1 --heads 4 --ffn 64 --vocab 300 --type q5_k
expect_error 2 "-o" "$LS_RUN" convert "$BIN" -z "$TOK"
expect_error 2 "--type" "$LS_RUN" convert "$BIN" -z "$TOK" -o "$T/x.gguf" --type int4
for cmd in inspect convert synth; do
  "$LS_RUN" "$cmd" --help >"$T/out" 2>&1 || { echo "FAIL: $cmd --help exited non-zero"; fail=1; }
  grep -q "^usage: litestage-run $cmd" "$T/out" || { echo "FAIL: $cmd --help prints no usage"; fail=1; }
done

# A model that declares a huge context (an untrusted field): the KV cache is
# sized for the run (generate's default), capped with -c, and a cache larger
# than the machine is refused before allocating, naming the file and the key.
"$LS_RUN" synth -o "$T/bigctx.gguf" --dim 64 --layers 16 --heads 2 --ffn 64 --vocab 300 --seq-len 4194304 2>/dev/null
n=$((n + 1))
if ! /usr/bin/time -f "%M" -o "$T/rss" "$LS_RUN" generate -m "$T/bigctx.gguf" -p hi -n 8 >"$T/out" 2>"$T/err"; then
  echo "FAIL: generate on a 4M-position model with -n 8: $(cat "$T/err")"; fail=1
elif [ "$(cat "$T/rss")" -gt 262144 ]; then
  echo "FAIL: generate -n 8 on a 4M-position model peaked at $(cat "$T/rss") KB: the KV cache follows the declared context"; fail=1
fi
expect_error 1 "$T/bigctx.gguf: llama.context_length 4194304 needs 32.0 GiB of KV cache" \
  "$LS_RUN" generate -m "$T/bigctx.gguf" -p hi -n -1
expect_error 1 "-c/--ctx-size 4194304 needs 32.0 GiB" "$LS_RUN" generate -m "$T/bigctx.gguf" -p hi -n 8 -c 4194304
expect_error 1 "-n 8: the prompt's 3 tokens and 8 new ones exceed the context of 4 positions (-c)" \
  "$LS_RUN" generate -m "$T/bigctx.gguf" -p hi -n 8 -c 4
expect_error 2 "-c 5000000" "$LS_RUN" generate -m "$T/bigctx.gguf" -p hi -c 5000000

[ "$fail" -eq 0 ] && echo "model_errors: $n cases ok"
exit "$fail"
