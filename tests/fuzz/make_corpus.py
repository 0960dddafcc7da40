#!/usr/bin/env python3
"""Writes the binary seeds of tests/fuzz/corpus: tiny GGUF models (the `gguf`
package: run with ~/.cache/cohost-venv/bin/python, which
scripts/make_model_variants.sh makes), a safetensors file, gRPC
GenerateRequests in protobuf's wire format (encoded here, field numbers from
proto/cohost/v1/inference.proto) and engine_fuzz's scripts. The text seeds
are written by hand.

    ~/.cache/cohost-venv/bin/python tests/fuzz/make_corpus.py
"""
import json
import pathlib
import random
import struct

import gguf
import numpy as np

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
          "{{ message['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_gguf(path, arch="llama", tokenizer="gpt2", experts=0, types=None):
    """One layer, hidden 32, two heads of 16 (one KV head), FFN 64."""
    hidden, ffn, heads, kv_heads = 32, 64, 2, 1
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(head_dim)
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(2)
        w.add_expert_feed_forward_length(ffn)
    if tokenizer == "gpt2":
        tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "\u0120",
                  "\u0120a", "H", "e", "l", "o", "!", "<think>", "</think>", "x"]
        types_ = [3, 3, 3] + [1] * 10 + [4, 4, 1]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_merges(["a b", "\u0120 a"])
    else:
        tokens = ["<unk>", "<s>", "</s>", "\u2581", "\u2581a", "a", "b", "<0x0A>", "<0x41>",
                  "[INST]", "[/INST]", "H", "e", "l", "o", "!"]
        types_ = [2, 3, 3] + [1] * 4 + [6, 6] + [1] * 7
        w.add_tokenizer_model("llama")
        w.add_token_scores([-float(i) for i in range(len(tokens))])
    w.add_token_list(tokens)
    w.add_token_types(types_)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(CHATML)
    rng = np.random.default_rng(7)
    types = types or {}

    def add(name, shape):
        data = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        kind = types.get(name.split(".")[-2], gguf.GGMLQuantizationType.F32)
        if kind == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, data.astype(np.float16))
        elif kind == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, data)
        else:
            q = gguf.quants.quantize(data, kind)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=kind)

    add("token_embd.weight", (len(tokens), hidden))
    add("output_norm.weight", (hidden,))
    add("blk.0.attn_norm.weight", (hidden,))
    add("blk.0.ffn_norm.weight", (hidden,))
    add("blk.0.attn_q.weight", (heads * head_dim, hidden))
    add("blk.0.attn_k.weight", (kv_heads * head_dim, hidden))
    add("blk.0.attn_v.weight", (kv_heads * head_dim, hidden))
    add("blk.0.attn_output.weight", (hidden, heads * head_dim))
    if arch.startswith("qwen3"):
        add("blk.0.attn_q_norm.weight", (head_dim,))
        add("blk.0.attn_k_norm.weight", (head_dim,))
    if experts:
        add("blk.0.ffn_gate_inp.weight", (experts, hidden))
        add("blk.0.ffn_gate_exps.weight", (experts, ffn, hidden))
        add("blk.0.ffn_up_exps.weight", (experts, ffn, hidden))
        add("blk.0.ffn_down_exps.weight", (experts, hidden, ffn))
    else:
        add("blk.0.ffn_gate.weight", (ffn, hidden))
        add("blk.0.ffn_up.weight", (ffn, hidden))
        add("blk.0.ffn_down.weight", (hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors(path):
    rng = np.random.default_rng(3)
    arrays = {"model.embed_tokens.weight": rng.standard_normal((4, 8)).astype(np.float16),
              "model.norm.weight": np.ones(8, np.float32),
              "lm_head.weight": rng.standard_normal((4, 8)).astype(np.float32)}
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, a in arrays.items():
        raw = a.tobytes()
        dtype = {np.float16: "F16", np.float32: "F32"}[a.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    # A bf16 tensor: the top halves of float32s.
    bf = (np.arange(6, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    header["model.layers.0.bias"] = {"dtype": "BF16", "shape": [2, 3],
                                     "data_offsets": [len(data), len(data) + len(bf)]}
    data += bf
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


# protobuf's wire format: enough of it for GenerateRequest's fields.
def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    if isinstance(value, bool) or isinstance(value, int):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, float):
        return varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(fields)


def grpc_requests():
    sampling = message(field(1, 0.7), field(2, 40), field(3, 0.9), field(8, 3),
                       field(9, message(field(1, 42), field(2, -100.0))))
    schema = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}},
                         "required": ["n"]})
    weather = json.dumps({"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]})
    chat = message(
        field(1, message(field(1, "system"), field(2, "Be brief."))),
        field(1, message(field(1, "user"), field(2, "Weather in Oslo?"))),
        field(1, message(field(1, "assistant"), field(2, ""),
                         field(3, message(field(1, "c1"), field(2, "get_weather"),
                                          field(3, '{"city": "Oslo"}'))))),
        field(1, message(field(1, "tool"), field(2, "cold"))),
        field(3, message(field(1, "get_weather"), field(2, "Weather"), field(3, weather),
                         field(4, True))),
        field(4, 2), field(2, False))
    return {
        "text": message(field(1, "m"), field(2, "Once upon a time"), field(5, sampling),
                        field(6, 8), field(7, "\n"), field(8, 2), field(12, 2)),
        "chat_tools": message(field(1, "m"), field(3, chat), field(13, True), field(17, True)),
        "schema": message(field(1, "m"), field(3, message(field(1, message(
            field(1, "user"), field(2, "n?"))))), field(14, 2), field(15, schema)),
        "tokens": message(field(1, "m"), field(4, message(field(1, 1), field(1, 5), field(1, 9))),
                          field(6, 4), field(9, True), field(11, -1)),
    }


def engine_scripts():
    """engine_fuzz's input is a script of bytes: a few random ones."""
    rng = random.Random(11)
    return {f"script{i}": bytes(rng.randrange(256) for _ in range(n))
            for i, n in enumerate((64, 200, 600))}


def main():
    Q = gguf.GGMLQuantizationType
    gguf_dir = CORPUS / "gguf_fuzz"
    gguf_dir.mkdir(parents=True, exist_ok=True)
    tiny_gguf(gguf_dir / "llama_f32.gguf")
    tiny_gguf(gguf_dir / "llama_spm_q8.gguf", tokenizer="llama",
              types={"token_embd": Q.Q8_0, "attn_q": Q.Q8_0, "attn_k": Q.Q8_0,
                     "ffn_up": Q.Q4_0, "ffn_down": Q.F16})
    tiny_gguf(gguf_dir / "qwen3moe_q8.gguf", arch="qwen3moe", experts=4,
              types={"ffn_gate_exps": Q.Q8_0, "ffn_up_exps": Q.Q8_0, "ffn_down_exps": Q.F16})
    st_dir = CORPUS / "safetensors_fuzz"
    st_dir.mkdir(parents=True, exist_ok=True)
    safetensors(st_dir / "three_dtypes.safetensors")
    grpc_dir = CORPUS / "grpc_request_fuzz"
    grpc_dir.mkdir(parents=True, exist_ok=True)
    for name, data in grpc_requests().items():
        (grpc_dir / name).write_bytes(data)
    engine_dir = CORPUS / "engine_fuzz"
    engine_dir.mkdir(parents=True, exist_ok=True)
    for name, data in engine_scripts().items():
        (engine_dir / name).write_bytes(data)


if __name__ == "__main__":
    main()
