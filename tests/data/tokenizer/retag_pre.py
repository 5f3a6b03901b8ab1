#!/usr/bin/env python3
"""Copies a vocab-only GGUF (no tensors) with tokenizer.ggml.pre set to a new
value. Used to make the "smollm" and "default" pre-tokenizer fixtures from
llama.cpp's starcoder and gpt-2 vocab files (see README.md).

usage: retag_pre.py IN.gguf OUT.gguf NEW_PRE
"""
import struct
import sys

FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


def skip_value(buf, at, vtype):
    if vtype in FIXED:
        return at + FIXED[vtype]
    if vtype == STRING:
        (n,) = struct.unpack_from("<Q", buf, at)
        return at + 8 + n
    if vtype == ARRAY:
        etype, n = struct.unpack_from("<IQ", buf, at)
        at += 12
        if etype in FIXED:
            return at + n * FIXED[etype]
        for _ in range(n):
            at = skip_value(buf, at, etype)
        return at
    raise ValueError(f"unknown GGUF value type {vtype}")


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def main():
    src, dst, pre = sys.argv[1:4]
    buf = open(src, "rb").read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    if magic != b"GGUF" or version != 3 or n_tensors != 0:
        sys.exit(f"{src}: not a vocab-only GGUF v3 file")
    at, kvs, seen = 24, [], False
    for _ in range(n_kv):
        start = at
        (klen,) = struct.unpack_from("<Q", buf, at)
        key = buf[at + 8:at + 8 + klen].decode()
        at += 8 + klen
        (vtype,) = struct.unpack_from("<I", buf, at)
        end = skip_value(buf, at + 4, vtype)
        if key == "tokenizer.ggml.pre":
            kvs.append(gguf_str(key) + struct.pack("<I", STRING) + gguf_str(pre))
            seen = True
        else:
            kvs.append(buf[start:end])
        at = end
    if not seen:
        kvs.append(gguf_str("tokenizer.ggml.pre") + struct.pack("<I", STRING) + gguf_str(pre))
    with open(dst, "wb") as f:
        f.write(struct.pack("<4sIQQ", b"GGUF", 3, 0, len(kvs)))
        for kv in kvs:
            f.write(kv)


if __name__ == "__main__":
    main()
