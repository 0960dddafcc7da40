#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint directory with experts made from the first
LAYERS layers of a GGUF with experts (scripts/make_moe_variant.py): from the
Qwen3-MoE file a Qwen3MoeForCausalLM checkpoint, from the Mixtral one (a
Llama file with experts) a MixtralForCausalLM one. They are what cohost's
mixture of experts is checked on against transformers
(tests/data/forward_reference_{qwen3moe,mixtral}.json,
scripts/make_moe_reference.py), and the Hugging Face names and configs of
models with experts are read on.

The weights are the GGUF's values rounded to bf16 (the checkpoint's own
values: both sides read the same file), the norms F32. Qwen3-MoE: each
layer's router as mlp.gate.weight and each expert as
mlp.experts.E.{gate,up,down}_proj; norm_topk_prob true, as llama.cpp routes
this architecture. Mixtral: block_sparse_moe.gate.weight and
block_sparse_moe.experts.E.w1/w3/w2 (gate, up, down), with q and k back in
the checkpoint's rotate-half order (llama.cpp's converter permuted them).
Few layers keep the files small; the text they write means nothing, which
the numbers compared do not need.

Usage: make_hf_moe_variant.py IN.gguf OUT_DIR
"""
import json
import os
import sys

import gguf
import numpy as np

from make_hf_variant import field, unpermute, write_safetensors, write_tokenizer_files

LAYERS = 4
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate_inp.weight": "mlp.gate.weight",
}
EXPERT_NAMES = {"ffn_gate_exps.weight": "gate_proj", "ffn_up_exps.weight": "up_proj",
                "ffn_down_exps.weight": "down_proj"}
MIXTRAL_NAMES = {"ffn_gate_inp.weight": "block_sparse_moe.gate.weight"}
MIXTRAL_EXPERT_NAMES = {"ffn_gate_exps.weight": "w1", "ffn_up_exps.weight": "w3",
                        "ffn_down_exps.weight": "w2"}
TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight",
             "output_norm.weight": "model.norm.weight"}


def bf16(values):
    """fp32 values rounded to bf16 (to nearest, ties to even), as uint16 bits."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    return (bits >> 16).astype(np.uint16)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(src)
    arch = field(reader, gguf.Keys.General.ARCHITECTURE)
    mixtral = arch == "llama" and field(reader, "llama.expert_count", 0) > 0
    if arch != "qwen3moe" and not mixtral:
        sys.exit(f"make_hf_moe_variant: {src} is {arch} without experts, not qwen3moe or Mixtral")
    heads = field(reader, f"{arch}.attention.head_count")
    kv_heads = field(reader, f"{arch}.attention.head_count_kv", heads)
    tensors = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        if t.name in TOP_NAMES:
            name = TOP_NAMES[t.name]
        else:
            _, layer, rest = t.name.split(".", 2)
            if int(layer) >= LAYERS:
                continue
            if rest in EXPERT_NAMES:
                for e in range(values.shape[0]):
                    if mixtral:
                        name = (f"model.layers.{layer}.block_sparse_moe.experts.{e}."
                                f"{MIXTRAL_EXPERT_NAMES[rest]}.weight")
                    else:
                        name = f"model.layers.{layer}.mlp.experts.{e}.{EXPERT_NAMES[rest]}.weight"
                    tensors[name] = ("BF16", bf16(values[e]))
                continue
            if mixtral and rest == "attn_q.weight":
                values = unpermute(values, heads)
            elif mixtral and rest == "attn_k.weight":
                values = unpermute(values, kv_heads)
            names = dict(LAYER_NAMES, **MIXTRAL_NAMES) if mixtral else LAYER_NAMES
            name = f"model.layers.{layer}.{names[rest]}"
        tensors[name] = ("F32", values) if values.ndim == 1 else ("BF16", bf16(values))
    assert "output.weight" not in {t.name for t in reader.tensors}
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    config = {
        "hidden_size": field(reader, f"{arch}.embedding_length"),
        "num_experts_per_tok": field(reader, f"{arch}.expert_used_count"),
        "num_hidden_layers": LAYERS,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": field(reader, f"{arch}.attention.key_length",
                          field(reader, f"{arch}.embedding_length") // heads),
        "max_position_embeddings": field(reader, f"{arch}.context_length"),
        "rms_norm_eps": field(reader, f"{arch}.attention.layer_norm_rms_epsilon"),
        "rope_theta": field(reader, f"{arch}.rope.freq_base", 10000.0),
        "vocab_size": len(field(reader, "tokenizer.ggml.tokens")),
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
        "torch_dtype": "bfloat16",
    }
    if mixtral:
        config.update({
            "architectures": ["MixtralForCausalLM"],
            "model_type": "mixtral",
            "intermediate_size": field(reader, f"{arch}.feed_forward_length"),
            "num_local_experts": field(reader, f"{arch}.expert_count"),
            "sliding_window": None,
            "router_aux_loss_coef": 0.0,
            "router_jitter_noise": 0.0,
            "output_router_logits": False,
        })
    else:
        config.update({
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "intermediate_size": field(reader, f"{arch}.feed_forward_length"),
            "moe_intermediate_size": field(reader, f"{arch}.expert_feed_forward_length"),
            "num_experts": field(reader, f"{arch}.expert_count"),
            "norm_topk_prob": True,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "attention_bias": False,
            "use_sliding_window": False,
        })
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    write_tokenizer_files(reader, out, config["max_position_embeddings"])


if __name__ == "__main__":
    main()
