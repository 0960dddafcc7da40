#!/usr/bin/env python3
"""Dumps a few rows of the default model's weights, as transformers loads the
GGUF (dequantized by the gguf package, Q/K rows put back into Hugging Face
rotate-half order by transformers' own GGUF loader), for loader_model_test.

usage: $VENV/bin/python scripts/dump_gguf_reference.py \
           models/SmolLM2-135M-Instruct.Q4_1.gguf tests/data/smollm2_q4_1_rows.txt
($VENV: a virtualenv made as scripts/requirements-reference.txt says.)
Output lines: <canonical tensor name> <row> <first col> <n> <n floats>.
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM

# (canonical name, HF parameter, rows); columns 0..15 and 560..575 of each row.
TENSORS = [
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight",
     [0, 1, 2, 31, 32, 33, 63, 64, 65, 127, 300, 575]),
    ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight",
     [0, 1, 31, 32, 33, 63, 64, 96, 191]),
    ("blk.29.attn_k.weight", "model.layers.29.self_attn.k_proj.weight", [0, 1, 32, 190]),
    ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", [0, 1, 32]),
    ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", [0, 7]),
    ("token_embd.weight", "model.embed_tokens.weight", [0, 1, 49151]),
    ("output_norm.weight", "model.norm.weight", [None]),
]
COLS = [(0, 16), (560, 16)]


def main():
    path, out_path = sys.argv[1], sys.argv[2]
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
        torch_dtype=torch.float32)
    params = dict(model.named_parameters())
    with open(out_path, "w") as out:
        for name, hf_name, rows in TENSORS:
            t = params[hf_name].detach()
            for row in rows:
                vec = t if row is None else t[row]
                for start, n in COLS:
                    values = " ".join("%.9g" % v for v in vec[start:start + n].tolist())
                    out.write("%s %d %d %d %s\n" % (name, -1 if row is None else row, start, n, values))


if __name__ == "__main__":
    main()
