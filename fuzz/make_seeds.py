#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) that are
not copies of model files: small real files cut from data/, jobs/ and
schedules/, tiny llama2.c checkpoints, a GGUF with every metadata type, and
the input prefixes the targets expect (docs/fuzzing.md). The GGUF model seeds
come from `litestage-run synth` and the store seeds from fuzz/store_seed.py.

    python3 fuzz/make_seeds.py        (from the repository root)"""
import json
import os
import random
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def head_lines(rel, n):
    return b"".join(read(rel).splitlines(keepends=True)[:n])


# ---- llama2.c checkpoints: header, then fp32 weights in llama2.c's order
def llama2c(dim, hidden, layers, heads, kv, vocab, seq, shared, ak42=False):
    rnd = random.Random(1)
    hd = dim // heads
    def f32(n):
        return struct.pack("<%df" % n, *[rnd.uniform(-0.1, 0.1) for _ in range(n)])
    norms = lambda: struct.pack("<%df" % (dim * layers), *([1.0] * dim * layers))
    layer_mats = (f32(layers * dim * heads * hd) + f32(layers * dim * kv * hd) * 2 + f32(layers * heads * hd * dim))
    ffn = f32(layers * hidden * dim) + f32(layers * dim * hidden) + f32(layers * hidden * dim)
    if ak42:
        h = struct.pack("<Ii7i", 0x616B3432, 1, dim, hidden, layers, heads, kv, vocab, seq) + bytes([1 if shared else 0])
        h += bytes(256 - len(h))
        body = norms() + norms() + struct.pack("<%df" % dim, *([1.0] * dim)) + f32(vocab * dim) + layer_mats + ffn
        return h + body + (b"" if shared else f32(vocab * dim))
    h = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    body = f32(vocab * dim) + norms() + layer_mats + norms() + ffn + struct.pack("<%df" % dim, *([1.0] * dim))
    body += f32(seq * hd // 2) * 2
    return h + body + (b"" if shared else f32(vocab * dim))


write("llama2c", "legacy-shared.bin", llama2c(8, 16, 1, 2, 1, 16, 4, True))
write("llama2c", "legacy-classifier.bin", llama2c(8, 16, 2, 2, 2, 12, 4, False))
write("llama2c", "ak42-v1.bin", llama2c(8, 8, 1, 4, 2, 10, 8, True, ak42=True))


# ---- tokenize: selector byte (bits 0-2 vocabulary modulo 5, bit 3 BOS), then text
texts = ["Once upon a time, there was a little girl named Lily.", " leading space and\ttab\nnewline",
         "caf\u00e9 \u65e5\u672c \U0001F642 <s> </s> <unk>", "x" * 40, "I'm 12,345 years old; DON'T   stop!!",
         "<|endoftext|>Hello<|im_start|> world \u00e9\u00e8 123abc"]
for i, t in enumerate(texts):
    for v in range(5):
        if (i + v) % 2 == 0:
            write("tokenize", "text%d-vocab%d" % (i, v), bytes([v | (8 if i % 2 else 0)]) + t.encode())
write("tokenize", "invalid-utf8", bytes([1]) + b"\xff\xfe\xc3(\xe2\x82 \x80\x80\xf0\x9f")
write("tokenize", "invalid-utf8-bpe", bytes([4 | 8]) + b"\xff\xfe\xc3(\xe2\x82 \x80\x80\xf0\x9f")

# ---- templates: the file, NUL, a generated text
outs = {"csqa": "Let me think. So the answer is option B.", "obqa": "the answer is option C. the answer is option A.",
        "strategyqa": "Yes. So the answer is option A.", "story": "and they lived happily. The end.\n\nOnce"}
for name, out in outs.items():
    write("template", name, read("data/templates/%s.json" % name) + b"\0" + out.encode())

# ---- schedules
write("schedule", "story-stories260K.json", read("schedules/story-stories260K.json"))
write("schedule", "minimal.json", json.dumps({"schema_version": 1, "stages": [
    {"name": "a", "skip": ["L0.attn", "L3.ffn"], "early_exit": {"window": 4, "threshold": 0.25}},
    {"name": "b", "skip": [], "early_exit": {"window": 0, "threshold": 0}}]}, indent=1))

# ---- datasets: format byte (0 auto .. 6 stories), limit byte, shard-count byte, then the file
FMT = {"auto": 0, "obqa": 1, "csqa": 2, "bigbench": 3, "kard": 4, "plain": 5, "stories": 6}
def ds(name, fmt, data, limit=0, shards=2):
    write("dataset", name, bytes([FMT[fmt], limit, shards - 1]) + data)
ds("obqa", "obqa", head_lines("data/datasets/obqa/dev.jsonl", 3))
ds("csqa-auto", "auto", head_lines("data/datasets/csqa/dev_rand_split.jsonl", 3), limit=2)
ds("kard", "kard", head_lines("data/datasets/strategyqa/kard_split/test.json", 4), shards=3)
task = json.loads(read("data/datasets/strategyqa/bigbench/task.json"))
task["examples"] = task["examples"][:3]
ds("bigbench", "bigbench", json.dumps(task, indent=1).encode())
ds("plain", "plain", b'{"id": "p1", "question": "Which?", "options": ["x", "y", "z"], "answer": "C"}\n'
                     b'{"question": "No id", "options": ["only"], "answer": 0}\n{"id": 7, "question": "q", "options": ["a", "b"]}\n')
stories = read("data/corpora/tinystories_val_subset.txt").split(b"\n\n")
ds("stories", "stories", b"\n\n".join(stories[:6]) + b"\n", limit=3, shards=4)
ds("stories-endoftext", "stories", b"Once upon a time, a cat sat.<|endoftext|>\n  Lily ran! \"Stop!\" she said.<|endoftext|>")

# ---- profiles
write("profile", "stories260K.json", read("jobs/profiles/stories260K.json"))

# ---- jobs, naming the fixtures fuzz_job puts next to the job file
story_job = {"name": "story", "model": "model.bin", "tokenizer": "tok.bin", "template": "story.json",
             "dataset": {"path": "stories.txt", "format": "stories", "split": "val"}, "limit": 3, "shards": 2,
             "objective": "fidelity", "tolerance": 0.1, "strategy": "greedy", "budget": {"min": 0, "max": 4},
             "early_exit": {"windows": [4, 8], "thresholds": [0.2, 0.35]}, "threads": 1,
             "latency": "profile.json", "seed": 1, "max_new_tokens": 8}
write("job", "story.json", json.dumps(story_job, indent=1))
obqa_job = {"model": "model.bin", "tokenizer": "tok.bin", "template": "obqa.json", "dataset": "obqa.jsonl",
            "limit": 2, "objective": "accuracy", "strategy": "exhaustive", "budget": {"max": 2},
            "latency": "measured", "comment": "x"}
write("job", "obqa-measured.json", json.dumps(obqa_job))
write("job", "story-stories260K-repo.json", read("jobs/story-stories260K.json"))
