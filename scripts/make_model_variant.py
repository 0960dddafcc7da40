#!/usr/bin/env python3
"""Writes a copy of a GGUF model with its weight matrices stored in another
type, through the gguf package's own reader, quantizer and writer (and the
K-quant encoders of scripts/kquants.py, which the package lacks): the
multi-model tests' second and third models, and the K-quant models the
quantized kernels are checked on against llama.cpp, made here rather than
downloaded, and GGUF files that cohost did not write itself.

Usage: make_model_variant.py IN.gguf OUT.gguf {F16,BF16,Q8_0,Q4_K_M,Q5_K_M}

Q4_K_M and Q5_K_M choose each tensor's type as llama.cpp's quantizer does
for these mixtures (llama_tensor_get_type): ffn_down and attn_v in Q6_K on
the layers use_more_bits picks, the rest in Q4_K (Q5_K); a matrix whose rows
are not whole 256-value super-blocks falls back to Q5_0 (Q5_1), or Q8_0 for
Q6_K, as llama.cpp does. For SmolLM2-135M (hidden 576) that is exactly the
mix llama.cpp writes: Q5_0 (Q5_1) for most matrices, Q4_K (Q5_K) and Q6_K for
ffn_down, Q5_0 (Q5_1) and Q8_0 for attn_v, Q8_0 for the embedding.

Metadata is copied (general.name gets the type appended); 1-D tensors (norms)
stay F32, as llama.cpp's quantizer keeps them.
"""
import sys

import gguf
import numpy as np

import kquants

Q = gguf.GGMLQuantizationType
TARGETS = ["F16", "BF16", "Q8_0", "Q4_K_M", "Q5_K_M"]
# A K-quant type for rows that are not whole super-blocks: llama.cpp's fallback.
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def use_more_bits(layer, layers):
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def type_for(name, cols, target, layers):
    """The type llama.cpp's mixture `target` gives a matrix `name`."""
    if target in ("F16", "BF16", "Q8_0"):
        return target
    base = "Q4_K" if target == "Q4_K_M" else "Q5_K"
    chosen = base
    if name in ("token_embd.weight", "output.weight"):
        chosen = "Q6_K"
    elif name.endswith((".attn_v.weight", ".ffn_down.weight")):
        layer = int(name.split(".")[1])
        if use_more_bits(layer, layers):
            chosen = "Q6_K"
    if cols % kquants.QK_K != 0:
        chosen = FALLBACK[chosen]
    return chosen


def copy_metadata(reader, writer, suffix, arch_from=None, arch_to=None):
    """Every key of `reader` into `writer`, general.name with `suffix`; with
    `arch_from` and `arch_to`, the architecture's keys renamed to the other's."""
    for field in reader.fields.values():
        # The writer adds the architecture itself; GGUF.* are the reader's own.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.NAME:
            value = f"{value} {suffix}"
        name = field.name
        if arch_from is not None and name.startswith(arch_from + "."):
            name = arch_to + name[len(arch_from):]
        writer.add_key_value(name, value, value_type, sub_type=sub_type)


def finish(writer):
    """Writes what `writer` holds and closes it."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def convert(tensor, target, layers):
    """The tensor's values in `target`'s type for it (1-D tensors stay F32): (data, type)."""
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    if values.ndim == 1 or values.shape[-1] % 32 != 0:
        return values, Q.F32
    qtype = type_for(tensor.name, values.shape[-1], target, layers)
    if qtype == "F16":
        return values.astype(np.float16), Q.F16
    if qtype in kquants.ENCODERS:
        rows = values.reshape(-1, values.shape[-1])
        blocks = kquants.ENCODERS[qtype](rows)
        return blocks.reshape(rows.shape[0], -1), Q[qtype]
    return gguf.quants.quantize(values, Q[qtype]), Q[qtype]


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in TARGETS:
        sys.exit(__doc__)
    src, dst, target = sys.argv[1], sys.argv[2], sys.argv[3]
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    layers = reader.get_field(f"{arch}.block_count").contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    copy_metadata(reader, writer, target)
    for tensor in reader.tensors:
        data, qtype = convert(tensor, target, layers)
        writer.add_tensor(tensor.name, data, raw_dtype=qtype)
    finish(writer)


if __name__ == "__main__":
    main()
