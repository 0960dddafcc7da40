#!/usr/bin/env python3
"""A bench-only model (bench/RESULTS.md): the Qwen3 variant
(scripts/make_qwen3_variant.py) with 64 experts of 96 rows a layer, 8 used a
token (Qwen3-30B-A3B's routing, scaled down), each expert a slice of the
FFN's rows. Its text means nothing; what it measures is the cost of many
small expert products a step.

Usage: ~/.cache/cohost-venv/bin/python bench/make_many_experts.py \
           models/SmolLM2-135M-Instruct.Qwen3-Q8_0.gguf OUT.gguf
"""
import os
import sys

import gguf
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from make_model_variant import copy_metadata, finish  # noqa: E402
E, K, W = 64, 8, 96
src, dst = sys.argv[1], sys.argv[2]
reader = gguf.GGUFReader(src)
hidden = reader.get_field("qwen3.embedding_length").contents()
writer = gguf.GGUFWriter(dst, arch="qwen3moe", endianess=reader.endianess)
copy_metadata(reader, writer, "many experts", arch_from="qwen3", arch_to="qwen3moe")
writer.add_uint32("qwen3moe.expert_count", E)
writer.add_uint32("qwen3moe.expert_used_count", K)
writer.add_uint32("qwen3moe.expert_feed_forward_length", W)
tensors = {t.name: t for t in reader.tensors}
rng = np.random.default_rng(3)
Q8 = gguf.GGMLQuantizationType.Q8_0
for t in reader.tensors:
    if t.name.endswith((".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight")):
        continue
    writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    if not t.name.endswith(".ffn_norm.weight"):
        continue
    p = t.name[: -len("ffn_norm.weight")]
    writer.add_tensor(p + "ffn_gate_inp.weight", (rng.standard_normal((E, hidden)) * 0.1).astype(np.float32))
    for part in ("gate", "up"):
        raw = np.asarray(tensors[p + f"ffn_{part}.weight"].data)  # [1536, bytes]
        rows = np.concatenate([raw[(e * W) % 1536:(e * W) % 1536 + W] for e in range(E)])
        writer.add_tensor(p + f"ffn_{part}_exps.weight", rows.reshape(E, W, raw.shape[1]), raw_dtype=Q8)
    down = gguf.quants.dequantize(tensors[p + "ffn_down.weight"].data, Q8).astype(np.float32)
    ex = np.stack([down[:, (e * W) % 1536:(e * W) % 1536 + W] for e in range(E)])
    writer.add_tensor(p + "ffn_down_exps.weight", gguf.quants.quantize(np.ascontiguousarray(ex), Q8), raw_dtype=Q8)
finish(writer)
