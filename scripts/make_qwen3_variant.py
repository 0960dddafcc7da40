#!/usr/bin/env python3
"""Writes a Qwen3-architecture GGUF made from a Llama one (the default model's
Q8_0 variant): the file cohost's Qwen3 path is checked on against llama.cpp
(tests/data/llamacpp_reference.json), made here since no Qwen3 GGUF can be
downloaded where the tests run.

What changes, per llama.cpp's qwen3 graph (NeoX RoPE, no biases, an RMSNorm
over each q and k head before RoPE):
- the metadata: "llama.*" keys become "qwen3.*", the architecture qwen3;
- attn_q / attn_k: rows back in the model's own order (llama.cpp's Llama
  converter permutes them for its adjacent-pair RoPE; Qwen3 files are not
  permuted), moved as whole rows of their Q8_0 blocks;
- attn_q_norm / attn_k_norm per layer (F32 [head_dim]): the layer's typical
  q (k) head RMS, so that scores keep about their size and the model still
  writes text, times a ripple of +-10% over the dims, so that a norm weight
  applied to the wrong dims shows.

Usage: make_qwen3_variant.py IN.gguf OUT.gguf
"""
import sys

import gguf
import numpy as np

from make_model_variant import copy_metadata, finish


def unpermute_rows(data, n_head):
    """Rows of `data` (raw or float, one row per output) in the model's order:
    the inverse of the converter's permute (rows of a head as [2, d/2] -> [d/2, 2])."""
    rows = data.shape[0]
    d = rows // n_head
    return (data.reshape(n_head, d // 2, 2, *data.shape[1:]).swapaxes(1, 2)
            .reshape(data.shape))


def head_rms_weight(w_rows, norm, n_head):
    """The typical head RMS of w x for x of RMS 1 scaled by `norm`."""
    row_norms = np.sqrt(((w_rows * norm[None, :]) ** 2).sum(axis=1))
    per_head = np.sqrt((row_norms.reshape(n_head, -1) ** 2).mean(axis=1))
    return float(per_head.mean())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(src)
    assert reader.get_field(gguf.Keys.General.ARCHITECTURE).contents() == "llama"
    field = lambda k: reader.get_field(k).contents()
    n_head = field("llama.attention.head_count")
    n_kv = field("llama.attention.head_count_kv")
    layers = field("llama.block_count")
    writer = gguf.GGUFWriter(dst, arch="qwen3", endianess=reader.endianess)
    copy_metadata(reader, writer, "as Qwen3", arch_from="llama", arch_to="qwen3")
    tensors = {t.name: t for t in reader.tensors}
    ripple = None
    for t in reader.tensors:
        data = t.data
        if t.name.endswith((".attn_q.weight", ".attn_k.weight")):
            heads = n_head if t.name.endswith(".attn_q.weight") else n_kv
            data = unpermute_rows(np.asarray(data), heads)
        writer.add_tensor(t.name, data, raw_dtype=t.tensor_type)
        if t.name.endswith(".attn_k.weight"):
            layer = t.name.split(".")[1]
            norm = gguf.quants.dequantize(tensors[f"blk.{layer}.attn_norm.weight"].data,
                                          tensors[f"blk.{layer}.attn_norm.weight"].tensor_type)
            for part, heads in (("q", n_head), ("k", n_kv)):
                w = tensors[f"blk.{layer}.attn_{part}.weight"]
                rows = gguf.quants.dequantize(w.data, w.tensor_type).astype(np.float64)
                head_dim = rows.shape[0] // heads
                if ripple is None:
                    ripple = 1 + 0.1 * np.sin(np.arange(head_dim) * 0.7)
                weight = (head_rms_weight(rows, norm, heads) * ripple).astype(np.float32)
                writer.add_tensor(f"blk.{layer}.attn_{part}_norm.weight", weight)
    assert layers == sum(1 for n in tensors if n.endswith(".attn_k.weight"))
    finish(writer)


if __name__ == "__main__":
    main()
