#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint directory (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, generation_config.json) holding the
same model as a Llama-architecture GGUF with 16-bit matrices (the BF16
variant scripts/make_model_variants.sh writes): a real-sized checkpoint for
cohost's Hugging Face path, made here rather than downloaded.

The matrices keep the GGUF's bytes, but for the rows of q and k, which
llama.cpp's converter permuted for its adjacent-pair RoPE and which go back
to the checkpoint's rotate-half order; norms stay F32 (a real checkpoint's
are bf16; F32 keeps the GGUF's values). The tokenizer is the GGUF's:
its tokens, merges and control tokens as a byte-level BPE tokenizer.json
with SmolLM2's pre-tokenizer (single digits, then GPT-2's byte-level split),
its chat template and its end-of-sequence tokens.

Usage: make_hf_variant.py IN.gguf OUT_DIR
"""
import json
import os
import struct
import sys

import gguf
import numpy as np

Q = gguf.GGMLQuantizationType
DTYPES = {Q.F32: ("F32", np.float32), Q.F16: ("F16", np.float16), Q.BF16: ("BF16", np.uint16)}
# Canonical (GGUF) names within a layer -> Hugging Face names.
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
CONTROL = 3  # llama.cpp's token type for control tokens


def field(reader, key, default=None):
    f = reader.get_field(key)
    return default if f is None else f.contents()


def hf_name(name):
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    parts = name.split(".", 2)
    if parts[0] == "blk" and parts[2] in LAYER_NAMES:
        return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}"
    sys.exit(f"make_hf_variant: no Hugging Face name for tensor {name}")


def unpermute(rows, heads):
    """Undoes llama.cpp's convert_hf_to_gguf permute of q / k rows."""
    shape = rows.shape
    return rows.reshape(heads, shape[0] // heads // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def write_safetensors(path, tensors):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, array) in tensors.items():
        size = array.nbytes
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, array in tensors.values():
            f.write(np.ascontiguousarray(array).tobytes())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(src)
    arch = field(reader, gguf.Keys.General.ARCHITECTURE)
    if arch != "llama":
        sys.exit(f"make_hf_variant: {src} is {arch}, not llama")
    heads = field(reader, f"{arch}.attention.head_count")
    kv_heads = field(reader, f"{arch}.attention.head_count_kv", heads)
    tokens = field(reader, "tokenizer.ggml.tokens")
    bos = field(reader, "tokenizer.ggml.bos_token_id")
    eos = field(reader, "tokenizer.ggml.eos_token_id")

    tensors = {}
    names = set()
    for t in reader.tensors:
        if t.tensor_type not in DTYPES:
            sys.exit(f"make_hf_variant: {t.name} is {t.tensor_type.name}; write an F16 or BF16 "
                     "variant first (make_model_variant.py)")
        dtype, np_type = DTYPES[t.tensor_type]
        # GGUF lists dimensions innermost first.
        array = np.asarray(t.data).view(np_type).reshape([int(d) for d in reversed(t.shape)])
        if t.name.endswith("attn_q.weight"):
            array = unpermute(array, heads)
        elif t.name.endswith("attn_k.weight"):
            array = unpermute(array, kv_heads)
        if array.ndim == 1 and dtype != "F32":
            # Norms as F32 (the values, not a bf16's bits read as integers).
            if dtype == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            array, dtype = array.astype(np.float32), "F32"
        tensors[hf_name(t.name)] = (dtype, array)
        names.add(t.name)

    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": field(reader, f"{arch}.embedding_length"),
        "intermediate_size": field(reader, f"{arch}.feed_forward_length"),
        "num_hidden_layers": field(reader, f"{arch}.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": field(reader, f"{arch}.context_length"),
        "rms_norm_eps": field(reader, f"{arch}.attention.layer_norm_rms_epsilon"),
        "rope_theta": field(reader, f"{arch}.rope.freq_base", 10000.0),
        "vocab_size": len(tokens),
        "tie_word_embeddings": "output.weight" not in names,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    write_tokenizer_files(reader, out, config["max_position_embeddings"])


def write_tokenizer_files(reader, out, max_positions):
    """The GGUF's tokenizer as tokenizer.json, tokenizer_config.json and
    generation_config.json in `out`."""
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    bos = field(reader, "tokenizer.ggml.bos_token_id")
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    added = [{"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (tok, kind) in enumerate(zip(tokens, types)) if kind == CONTROL]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {tok: i for i, tok in enumerate(tokens)},
                  "merges": [m.split(" ", 1) for m in merges]},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    tokenizer_config = {
        "add_prefix_space": False,
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "chat_template": field(reader, "tokenizer.chat_template"),
        "model_max_length": max_positions,
        "tokenizer_class": "GPT2Tokenizer",
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token_id": bos, "eos_token_id": eos}, f)


if __name__ == "__main__":
    main()
