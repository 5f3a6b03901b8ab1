#!/usr/bin/env bash
# The GGUF files `convert` and `synth` write follow the rules llama.cpp's gguf
# reader and llama loader enforce, checked by an independent reader (Python,
# not our C parser): version 3, names < 64 bytes, no duplicates, tensor offsets
# back to back with 32-byte padding (the last tensor padded too), the data
# section inside the file, standard llama keys with the types llama.cpp reads,
# the standard tensor names and shapes, a SentencePiece vocabulary with U+2581
# for spaces and byte tokens typed 6. Skipped (77) without python3.
set -u
: "${LS_RUN:?}" "${LS_DATA_DIR:?}"
command -v python3 >/dev/null || exit 77
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M="$LS_DATA_DIR/models/stories260K"
"$LS_RUN" convert "$M/stories260K.bin" -z "$M/tok512.bin" -o "$T/f32.gguf" 2>/dev/null || exit 1
"$LS_RUN" convert "$M/stories260K.bin" -z "$M/tok512.bin" -o "$T/q8.gguf" --type q8_0 2>/dev/null || exit 1
"$LS_RUN" synth -o "$T/synth.gguf" --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 96 --vocab 400 --type q4_0 2>/dev/null || exit 1
"$LS_RUN" synth -o "$T/tied.gguf" --dim 64 --layers 1 --heads 2 --ffn 64 --vocab 300 --type f16 --tied 2>/dev/null || exit 1

python3 - "$T/f32.gguf" "$T/q8.gguf" "$T/synth.gguf" "$T/tied.gguf" <<'EOF'
import struct, sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
FMT = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
BLOCK = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 30: (1, 2)}

def check(path):
    b = open(path, 'rb').read()
    o = 0
    def rd(f):
        nonlocal o
        v = struct.unpack_from('<' + f, b, o)
        o += struct.calcsize(f)
        return v[0]
    def rs():
        nonlocal o
        n = rd('Q')
        s = b[o:o + n]
        o += n
        return s.decode('utf-8')
    def rv(t):
        if t == 8:
            return rs()
        if t == 9:
            et, n = rd('I'), rd('Q')
            return (et, [rv(et) for _ in range(n)])
        return rd(FMT[t])
    assert b[:4] == b'GGUF', 'magic'
    o = 4
    assert rd('I') == 3, 'version'
    nt, nkv = rd('Q'), rd('Q')
    kv, types = {}, {}
    for _ in range(nkv):
        k = rs()
        t = rd('I')
        assert k not in kv, 'duplicate key ' + k
        kv[k], types[k] = rv(t), t
    infos = []
    for _ in range(nt):
        name = rs()
        assert 0 < len(name.encode()) < 64, 'name length ' + name
        nd = rd('I')
        ne = [rd('Q') for _ in range(nd)]
        infos.append((name, ne, rd('I'), rd('Q')))
    names = [i[0] for i in infos]
    assert len(set(names)) == len(names), 'duplicate tensor'
    align = kv.get('general.alignment', 32)
    assert types.get('general.alignment', 4) == 4 and align == 32
    data = (o + align - 1) // align * align
    expect = 0
    for name, ne, t, off in infos:
        assert off == expect, '%s offset %d expected %d' % (name, off, expect)
        blk, bb = BLOCK[t]
        assert ne[0] % blk == 0
        n = ne[0] // blk * bb
        for d in ne[1:]:
            n *= d
        expect += (n + align - 1) // align * align
    assert data + expect <= len(b), 'data section (%d) past the end (%d)' % (data + expect, len(b))
    # llama keys and the types llama.cpp reads them as
    assert kv['general.architecture'] == 'llama'
    for k in ['llama.context_length', 'llama.embedding_length', 'llama.block_count', 'llama.feed_forward_length',
              'llama.attention.head_count', 'llama.attention.head_count_kv', 'llama.rope.dimension_count',
              'llama.vocab_size', 'general.file_type', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id',
              'tokenizer.ggml.unknown_token_id']:
        assert types[k] == 4, k + ' is not uint32'
    assert types['llama.attention.layer_norm_rms_epsilon'] == 6 and types['llama.rope.freq_base'] == 6
    dim, heads = kv['llama.embedding_length'], kv['llama.attention.head_count']
    kvh, ffn, L = kv['llama.attention.head_count_kv'], kv['llama.feed_forward_length'], kv['llama.block_count']
    hd = dim // heads
    assert kv['llama.rope.dimension_count'] == hd
    assert kv['tokenizer.ggml.model'] == 'llama'
    et, toks = kv['tokenizer.ggml.tokens']
    _, scores = kv['tokenizer.ggml.scores']
    tt, ttype = kv['tokenizer.ggml.token_type']
    assert et == 8 and tt == 5 and len(toks) == len(scores) == len(ttype) == kv['llama.vocab_size']
    assert not any(' ' in t for t in toks), 'a token has a plain space'
    assert any('\u2581' in t for t in toks), 'no U+2581 in the vocabulary'
    for i, t in enumerate(toks):
        isbyte = len(t) == 6 and t.startswith('<0x') and t.endswith('>')
        assert (ttype[i] == 6) == isbyte, 'token %d %r has type %d' % (i, t, ttype[i])
    assert ttype[kv['tokenizer.ggml.unknown_token_id']] == 2
    assert ttype[kv['tokenizer.ggml.bos_token_id']] == 3 and ttype[kv['tokenizer.ggml.eos_token_id']] == 3
    V = len(toks)
    shapes = {'token_embd.weight': [dim, V], 'output_norm.weight': [dim]}
    if 'output.weight' in names:
        shapes['output.weight'] = [dim, V]
    for l in range(L):
        p = 'blk.%d.' % l
        shapes.update({p + 'attn_norm.weight': [dim], p + 'ffn_norm.weight': [dim],
                       p + 'attn_q.weight': [dim, heads * hd], p + 'attn_k.weight': [dim, kvh * hd],
                       p + 'attn_v.weight': [dim, kvh * hd], p + 'attn_output.weight': [heads * hd, dim],
                       p + 'ffn_gate.weight': [dim, ffn], p + 'ffn_up.weight': [dim, ffn],
                       p + 'ffn_down.weight': [ffn, dim]})
    got = {i[0]: i for i in infos}
    assert set(got) == set(shapes), 'tensor names differ: %s' % (set(got) ^ set(shapes))
    for n, s in shapes.items():
        assert got[n][1] == s, '%s shape %s expected %s' % (n, got[n][1], s)
        if len(s) == 1:
            assert got[n][2] == 0, n + ': norms must be F32'
    return len(infos)

for p in sys.argv[1:]:
    try:
        n = check(p)
    except Exception as e:
        print('FAIL: %s: %s' % (p, e))
        sys.exit(1)
    print('ok: %s (%d tensors)' % (p, n))
EOF
