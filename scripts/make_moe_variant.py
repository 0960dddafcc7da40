#!/usr/bin/env python3
"""Writes a GGUF with experts made from a dense one: from the Qwen3 variant
(scripts/make_qwen3_variant.py) a Qwen3-MoE file, from a Llama one (the
default model's Q8_0 variant) a Mixtral (a Llama file with experts, as
llama.cpp's converter writes Mixtral): the files cohost's mixture-of-experts
path is checked on against llama.cpp (tests/data/llamacpp_reference.json),
made here since no MoE GGUF can be downloaded where the tests run.

Each layer's FFN becomes EXPERTS experts, USED of them picked per token, in
the three tensors a layer llama.cpp's converter writes ([experts, rows,
cols]: ffn_gate_exps, ffn_up_exps, ffn_down_exps), and a router
ffn_gate_inp [experts, hidden] (F32, as llama.cpp keeps it). Every expert is
the whole FFN with each row of its gate, up and down scaled by its own
factor 1 + SPREAD * N(0, 1) (the Q8_0 blocks' scales multiplied: nothing
requantized), so that the experts differ by about a tenth and a wrong
pick or weight shows, while any USED of them, weighted by probabilities
that sum to 1, still make the model write text (experts cut from slices of
the FFN made it babble). The router's rows are Gaussian, scaled so that a
layer's logits spread over about ROUTER_SPREAD units. llama.cpp routes both
architectures by softmax over all experts, then divides the picked
probabilities by their sum; so does cohost.

Usage: make_moe_variant.py IN.gguf OUT.gguf
"""
import sys

import gguf
import numpy as np

from make_model_variant import copy_metadata, finish

EXPERTS = 4
USED = 2
SPREAD = 0.1
ROUTER_SPREAD = 2.0
Q8 = gguf.GGMLQuantizationType.Q8_0
Q8_BLOCK = 34  # bytes: an fp16 scale, then 32 int8 values


def scaled_rows(raw, factors):
    """Q8_0 rows `raw` [rows, bytes] with each row's values times its factor."""
    blocks = np.array(raw, dtype=np.uint8).reshape(raw.shape[0], -1, Q8_BLOCK)
    d = np.ascontiguousarray(blocks[:, :, :2]).view(np.float16).astype(np.float32)
    d = (d * factors[:, None, None]).astype(np.float16)
    blocks[:, :, :2] = d.view(np.uint8)
    return blocks.reshape(raw.shape)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    assert arch in ("qwen3", "llama"), arch
    hidden = reader.get_field(f"{arch}.embedding_length").contents()
    inter = reader.get_field(f"{arch}.feed_forward_length").contents()
    if arch == "qwen3":
        out = "qwen3moe"
        writer = gguf.GGUFWriter(dst, arch=out, endianess=reader.endianess)
        copy_metadata(reader, writer, "as Qwen3-MoE", arch_from=arch, arch_to=out)
    else:
        out = arch  # Mixtral: a Llama file with experts, each feed_forward_length wide
        writer = gguf.GGUFWriter(dst, arch=out, endianess=reader.endianess)
        copy_metadata(reader, writer, "as Mixtral")
    writer.add_uint32(f"{out}.expert_count", EXPERTS)
    writer.add_uint32(f"{out}.expert_used_count", USED)
    if out == "qwen3moe":
        writer.add_uint32(f"{out}.expert_feed_forward_length", inter)
    tensors = {t.name: t for t in reader.tensors}
    rng = np.random.default_rng(11)
    for t in reader.tensors:
        name = t.name
        if name.endswith((".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight")):
            continue
        writer.add_tensor(name, t.data, raw_dtype=t.tensor_type)
        if not name.endswith(".ffn_norm.weight"):
            continue
        p = name[: -len("ffn_norm.weight")]
        # The router: the normed activations' RMS is about the norm weight's.
        norm = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        sigma = ROUTER_SPREAD / (np.sqrt(hidden) * np.sqrt((norm ** 2).mean()))
        router = (rng.standard_normal((EXPERTS, hidden)) * sigma).astype(np.float32)
        writer.add_tensor(p + "ffn_gate_inp.weight", router)
        for part in ("gate", "up", "down"):
            w = tensors[p + f"ffn_{part}.weight"]
            assert w.tensor_type == Q8
            raw = np.asarray(w.data)
            experts = [scaled_rows(raw, (1 + SPREAD * rng.standard_normal(raw.shape[0]))
                                   .astype(np.float32)) for _ in range(EXPERTS)]
            writer.add_tensor(p + f"ffn_{part}_exps.weight", np.stack(experts), raw_dtype=Q8)
    finish(writer)


if __name__ == "__main__":
    main()
