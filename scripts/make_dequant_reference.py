#!/usr/bin/env python3
"""Writes tests/data/dequant_reference.json: random blocks of every quantized
type cohost reads, and their values as the gguf package (llama.cpp's own
Python reader, an implementation independent of cohost's) dequantizes them.
dequant_test checks runtime::DequantizeToF32 against it, and the kernels'
tests check the quantized dot products against that dequantizer.

Usage: make_dequant_reference.py [OUT.json]   (needs gguf==0.19.0 and numpy)

The scale fields (fp16 d, dmin, m) are set to finite halves of mixed sign and
magnitude; every other byte is random, so every code of every field occurs.
"""
import importlib.metadata
import json
import sys

import gguf
import numpy as np

T = gguf.GGMLQuantizationType
BLOCKS = 3  # per type

# type -> (block bytes, byte offsets of its fp16 scale fields)
LAYOUTS = {
    T.Q8_0: (34, [0]),
    T.Q4_0: (18, [0]),
    T.Q4_1: (20, [0, 2]),
    T.Q5_0: (22, [0]),
    T.Q5_1: (24, [0, 2]),
    T.Q4_K: (144, [0, 2]),
    T.Q5_K: (176, [0, 2]),
    T.Q6_K: (210, [208]),
    T.Q2_K: (84, [80, 82]),
    T.Q3_K: (110, [108]),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/dequant_reference.json"
    rng = np.random.default_rng(20261203)
    cases = []
    for qtype, (size, half_offsets) in LAYOUTS.items():
        raw = rng.integers(0, 256, size=(BLOCKS, size), dtype=np.uint8)
        for b in range(BLOCKS):
            for off in half_offsets:
                h = np.float16(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-4, 1))
                raw[b, off:off + 2] = np.frombuffer(h.tobytes(), dtype=np.uint8)
        values = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
        cases.append({
            "type": qtype.name,
            "bytes": raw.reshape(-1).tobytes().hex(),
            # float32 values printed exactly (repr of the float32 as a Python float)
            "values": [float(v) for v in values],
        })
    with open(out, "w") as f:
        generator = "scripts/make_dequant_reference.py, gguf " + importlib.metadata.version("gguf")
        json.dump({"generator": generator, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
