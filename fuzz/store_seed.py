#!/usr/bin/env python3
"""Writes a fuzz_store input (the description documented in fuzz/fuzz_store.c)
from a real results store, so that the store target's seeds are real stores.

    /usr/bin/python3 fuzz/store_seed.py STORE.h5 OUT [--rows N] [--candidate ID]

--rows keeps the first N candidate rows (smaller seeds); --candidate is the id
export is asked for (default -1: the chosen schedule). Needs h5py (python3-h5py)."""
import argparse
import struct

import h5py
import numpy as np

DATASETS = ["candidates/id", "candidates/kind", "candidates/budget", "candidates/skip_mask",
            "candidates/ee_window", "candidates/ee_threshold", "candidates/score", "candidates/measured_ms",
            "candidates/predicted_ms", "candidates/prompt_tokens", "candidates/gen_tokens",
            "candidates/meets_target", "candidates/run", "candidates/round", "reference/score",
            "reference/gen_tokens", "importance/ranking", "importance/accumulated_cos",
            "pareto/candidate_id", "schedule", "stage_names", "scores"]
STR_ATTRS = ["status", "job_json", "model_name", "model_fingerprint", "objective", "strategy"]
INT_ATTRS = ["n_stages", "n_layers", "n_examples"]
KINDS = {np.dtype("int32"): 0, np.dtype("int64"): 1, np.dtype("uint8"): 2, np.dtype("float64"): 3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--candidate", type=int, default=-1)
    a = ap.parse_args()
    out = bytearray()
    with h5py.File(a.store, "r") as f:
        for name in INT_ATTRS:
            v = int(f.attrs[name])
            out += bytes([1, v & 0xFF]) if -128 <= v < 128 else bytes([2]) + struct.pack("<q", v)
        mask = sum(1 << i for i, n in enumerate(STR_ATTRS) if n in f.attrs)
        out.append(mask)
        for n in STR_ATTRS:
            if n in f.attrs:
                s = bytes(f.attrs[n])[:4096]
                out += struct.pack("<H", len(s)) + s
        for name in DATASETS:
            if name not in f:
                out.append(0)
                continue
            d = f[name]
            data = d[()]
            if a.rows is not None and (name.startswith("candidates/") or name == "scores"):
                data = data[: a.rows]
            shape = np.shape(data)
            assert len(shape) <= 3 and all(n < 256 for n in shape), (name, shape)
            is_str = d.dtype.kind == "S"
            kind = 4 if is_str else KINDS[d.dtype]
            chunked = d.chunks is not None
            out.append(1 | len(shape) << 1 | kind << 3 | (0x80 if chunked else 0))
            if is_str:
                out += struct.pack("<H", d.dtype.itemsize - 1)
            out += bytes(shape)
            out += np.ascontiguousarray(data).astype(d.dtype.newbyteorder("<")).tobytes()
    out.append(a.candidate & 0xFF)
    with open(a.out, "wb") as g:
        g.write(out)


if __name__ == "__main__":
    main()
