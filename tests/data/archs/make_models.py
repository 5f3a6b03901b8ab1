#!/usr/bin/env python3
"""Tiny random-weight GGUF models (F32) of the shapes LiteStage supports beyond
plain llama, with a small byte-level BPE vocabulary, for the llama.cpp oracle
tests (tests/engine/test_archs.c). Pure Python (no numpy); deterministic.

usage: make_models.py OUT_DIR CORPUS.txt

Writes:
  qwen2-tiny.gguf         qwen2: Q/K/V biases, NEOX rope, classifier tied to
                          token_embd, pre-tokenizer qwen2, no BOS (token_embd
                          std 0.25 and attn_output std 0.5, so that the tied
                          classifier does not just repeat the current token)
  llama3-tiny.gguf        llama with Llama 3 rope scaling as a rope_freqs tensor,
                          untied output.weight, pre-tokenizer llama-bpe, BOS
  llama3-keys-tiny.gguf   the same weights with the rope scaling given as
                          llama.rope.scaling.* keys instead of rope_freqs
                          (llama.cpp does not read these keys; LiteStage must
                          give the same logits as for llama3-tiny.gguf)

Shape of all: dim 64, 2 layers, 4 heads, 2 KV heads (head 16), FFN 128,
context 256. The vocabulary: the 256 byte tokens of GPT-2's byte-to-unicode
table, NMERGES merges learnt from CORPUS (greedy pair counts over words split
at spaces), then control tokens <|endoftext|>, <|im_start|>, <|im_end|>,
<|begin_of_text|>, <|eot_id|>.
"""
import math
import os
import random
import struct
import sys
from array import array

DIM, LAYERS, HEADS, KV_HEADS, FFN, CTX = 64, 2, 4, 2, 128, 256
HEAD = DIM // HEADS
NMERGES = 300
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>"]
# Llama 3 rope scaling, scaled down so that it matters at these positions
ROPE_THETA, FACTOR, LOW, HIGH, ORIG_CTX = 10000.0, 8.0, 1.0, 4.0, 64

T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9


def byte_to_unicode():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def learn_merges(corpus, n):
    """Greedy BPE on words (a leading space kept with the word), byte-mapped."""
    b2u = byte_to_unicode()
    text = open(corpus, "rb").read()[:200000].decode("utf-8", "replace")
    counts = {}
    for i, w in enumerate(text.replace("\n", " ").split(" ")):
        if not w:
            continue
        key = tuple(b2u[b] for b in (" " + w if i else w).encode())
        counts[key] = counts.get(key, 0) + 1
    words = dict(counts)
    merges = []
    for _ in range(n):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def build_vocab(corpus):
    b2u = byte_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = learn_merges(corpus, NMERGES)
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    types = [1] * len(tokens) + [3] * len(SPECIALS)
    tokens += SPECIALS
    return tokens, types, [f"{a} {b}" for a, b in merges]


class Writer:
    def __init__(self):
        self.kv, self.tensors = [], []

    @staticmethod
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def add(self, key, vtype, payload):
        self.kv.append(self.s(key) + struct.pack("<I", vtype) + payload)

    def str(self, key, v):
        self.add(key, T_STRING, self.s(v))

    def u32(self, key, v):
        self.add(key, T_UINT32, struct.pack("<I", v))

    def f32(self, key, v):
        self.add(key, T_FLOAT32, struct.pack("<f", v))

    def bool(self, key, v):
        self.add(key, T_BOOL, struct.pack("<B", 1 if v else 0))

    def strs(self, key, vs):
        self.add(key, T_ARRAY, struct.pack("<IQ", T_STRING, len(vs)) + b"".join(self.s(v) for v in vs))

    def i32s(self, key, vs):
        self.add(key, T_ARRAY, struct.pack("<IQ", T_INT32, len(vs)) + array("i", vs).tobytes())

    def tensor(self, name, ne, data):
        self.tensors.append((name, ne, array("f", data).tobytes()))

    def write(self, path):
        align = 32
        head = struct.pack("<4sIQQ", b"GGUF", 3, len(self.tensors), len(self.kv) + 1)
        kv = b"".join(self.kv) + self.s("general.alignment") + struct.pack("<II", T_UINT32, align)
        infos, off = b"", 0
        for name, ne, data in self.tensors:
            infos += self.s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
            infos += struct.pack("<IQ", 0, off)  # type F32, offset
            off += (len(data) + align - 1) // align * align
        meta = head + kv + infos
        with open(path + ".tmp", "wb") as f:
            f.write(meta + b"\0" * ((-len(meta)) % align))
            for _, _, data in self.tensors:
                f.write(data + b"\0" * ((-len(data)) % align))
        os.replace(path + ".tmp", path)


def gauss(rng, n, std, mean=0.0):
    return [mean + std * rng.gauss(0.0, 1.0) for _ in range(n)]


def llama3_factors():
    """What Llama 3's reference code divides each rope frequency by."""
    out = []
    for i in range(HEAD // 2):
        freq = ROPE_THETA ** (-2.0 * i / HEAD)
        wavelen = 2 * math.pi / freq
        if wavelen < ORIG_CTX / HIGH:
            out.append(1.0)
        elif wavelen > ORIG_CTX / LOW:
            out.append(FACTOR)
        else:
            smooth = (ORIG_CTX / wavelen - LOW) / (HIGH - LOW)
            out.append(1.0 / ((1 - smooth) / FACTOR + smooth))
    return out


def model(path, arch, vocab, seed, tied, biases, rope, pre, add_bos, bos, eos, emb_std=1.0, out_std=0.125):
    tokens, types, merges = vocab
    nv = len(tokens)
    rng = random.Random(seed)
    w = Writer()
    w.str("general.architecture", arch)
    w.str("general.name", os.path.basename(path)[:-5])
    w.u32(f"{arch}.context_length", CTX)
    w.u32(f"{arch}.embedding_length", DIM)
    w.u32(f"{arch}.block_count", LAYERS)
    w.u32(f"{arch}.feed_forward_length", FFN)
    w.u32(f"{arch}.attention.head_count", HEADS)
    w.u32(f"{arch}.attention.head_count_kv", KV_HEADS)
    w.f32(f"{arch}.rope.freq_base", ROPE_THETA)
    w.f32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    if rope == "keys":
        w.str(f"{arch}.rope.scaling.type", "llama3")
        w.f32(f"{arch}.rope.scaling.factor", FACTOR)
        w.f32(f"{arch}.rope.scaling.low_freq_factor", LOW)
        w.f32(f"{arch}.rope.scaling.high_freq_factor", HIGH)
        w.u32(f"{arch}.rope.scaling.original_context_length", ORIG_CTX)
    w.str("tokenizer.ggml.model", "gpt2")
    w.str("tokenizer.ggml.pre", pre)
    w.strs("tokenizer.ggml.tokens", tokens)
    w.i32s("tokenizer.ggml.token_type", types)
    w.strs("tokenizer.ggml.merges", merges)
    w.u32("tokenizer.ggml.bos_token_id", tokens.index(bos))
    w.u32("tokenizer.ggml.eos_token_id", tokens.index(eos))
    w.bool("tokenizer.ggml.add_bos_token", add_bos)
    kv = KV_HEADS * HEAD
    w.tensor("token_embd.weight", [DIM, nv], gauss(rng, DIM * nv, emb_std))
    if rope == "tensor":
        w.tensor("rope_freqs.weight", [HEAD // 2], llama3_factors())
    for l in range(LAYERS):
        b = f"blk.{l}."
        w.tensor(b + "attn_norm.weight", [DIM], gauss(rng, DIM, 0.1, 1.0))
        w.tensor(b + "attn_q.weight", [DIM, DIM], gauss(rng, DIM * DIM, 0.25))
        w.tensor(b + "attn_k.weight", [DIM, kv], gauss(rng, DIM * kv, 0.25))
        w.tensor(b + "attn_v.weight", [DIM, kv], gauss(rng, DIM * kv, 0.125))
        if biases:
            w.tensor(b + "attn_q.bias", [DIM], gauss(rng, DIM, 0.5))
            w.tensor(b + "attn_k.bias", [kv], gauss(rng, kv, 0.5))
            w.tensor(b + "attn_v.bias", [kv], gauss(rng, kv, 0.5))
        w.tensor(b + "attn_output.weight", [DIM, DIM], gauss(rng, DIM * DIM, out_std))
        w.tensor(b + "ffn_norm.weight", [DIM], gauss(rng, DIM, 0.1, 1.0))
        w.tensor(b + "ffn_gate.weight", [DIM, FFN], gauss(rng, DIM * FFN, 0.125))
        w.tensor(b + "ffn_up.weight", [DIM, FFN], gauss(rng, DIM * FFN, 0.125))
        w.tensor(b + "ffn_down.weight", [FFN, DIM], gauss(rng, FFN * DIM, 1 / math.sqrt(FFN)))
    w.tensor("output_norm.weight", [DIM], gauss(rng, DIM, 0.1, 1.0))
    if not tied:
        w.tensor("output.weight", [DIM, nv], gauss(rng, DIM * nv, 0.5))
    w.write(path)


def main():
    out, corpus = sys.argv[1:3]
    vocab = build_vocab(corpus)
    model(os.path.join(out, "qwen2-tiny.gguf"), "qwen2", vocab, 7, tied=True, biases=True, rope=None,
          pre="qwen2", add_bos=False, bos="<|endoftext|>", eos="<|im_end|>", emb_std=0.25, out_std=0.5)
    for name, rope in (("llama3-tiny.gguf", "tensor"), ("llama3-keys-tiny.gguf", "keys")):
        model(os.path.join(out, name), "llama", vocab, 11, tied=False, biases=False, rope=rope,
              pre="llama-bpe", add_bos=True, bos="<|begin_of_text|>", eos="<|eot_id|>")


if __name__ == "__main__":
    main()
