#!/usr/bin/env python3
"""Writes tests/data/forward_reference_{qwen3moe,mixtral}.json: transformers'
Qwen3MoeForCausalLM or MixtralForCausalLM, in float32, on the checkpoint
scripts/make_hf_moe_variant.py writes (models/SmolLM2-135M-Instruct.
{Qwen3MoE,Mixtral}-hf): the independent reference for cohost's mixture of
experts read from Hugging Face checkpoints
(tests/runtime/model/moe_reference_test.cc).

Per prompt (token ids, so that no tokenizer stands between): the last
position's logits at its 32 highest ids and 64 fixed random ids; a greedy
continuation of 12 tokens with each step's top-1 minus top-2 margin; and,
at the last position, each layer's smallest gap between a token's
num_experts_per_tok-th and next router logit over the prompt, so that a
routing near-tie (which would let two correct fp32 engines pick differently)
is seen rather than guessed. The checkpoint's sha256 is recorded. Every
weight must come from the checkpoint (none initialized at random).

Usage: make_moe_reference.py [qwen3moe|mixtral] [OUT.json]
  (a venv with torch, transformers and numpy; scripts/requirements-reference.txt)
"""
import hashlib
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINTS = {"qwen3moe": "SmolLM2-135M-Instruct.Qwen3MoE-hf",
               "mixtral": "SmolLM2-135M-Instruct.Mixtral-hf"}
# SmolLM2's ids of "The capital of France is", "def fibonacci(n):\n" and
# "1, 2, 3, 4, 5, 6, 7, 8," (its tokenizer's; the test feeds them as ids).
PROMPTS = [
    [504, 3575, 282, 4649, 314],
    [1604, 3987, 46477, 24, 94, 727, 198],
    [33, 28, 216, 34, 28, 216, 35, 28, 216, 36, 28, 216, 37, 28, 216, 38, 28, 216, 39, 28,
     216, 40, 28],
]
GREEDY = 12
TOP = 32
RANDOM = 64


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "qwen3moe"
    checkpoint = os.path.join(ROOT, "models", CHECKPOINTS[which])
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "tests", "data", f"forward_reference_{which}.json")
    torch.manual_seed(0)
    model, info = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32,
                                                       output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    model.eval()
    cfg = model.config
    experts = cfg.num_local_experts if which == "mixtral" else cfg.num_experts
    assert (which == "mixtral" or cfg.norm_topk_prob) and cfg.num_experts_per_tok < experts
    k = cfg.num_experts_per_tok
    gaps = {}

    def watch(layer):
        def hook(_module, inputs, _output):
            x = inputs[0].reshape(-1, inputs[0].shape[-1])
            logits = torch.nn.functional.linear(x, model.model.layers[layer].mlp.gate.weight)
            top = torch.sort(logits, dim=-1, descending=True).values
            gaps[layer] = float((top[:, k - 1] - top[:, k]).min())
        return hook

    for i, layer in enumerate(model.model.layers):
        layer.mlp.register_forward_hook(watch(i))
    vocab = cfg.vocab_size
    rng = np.random.default_rng(5)
    random_ids = sorted(int(i) for i in rng.choice(vocab, size=RANDOM, replace=False))
    cases = []
    with torch.no_grad():
        for ids in PROMPTS:
            gaps.clear()
            logits = model(torch.tensor([ids])).logits[0, -1].double().numpy()
            prompt_gaps = [gaps[i] for i in range(len(model.model.layers))]
            top = [int(i) for i in np.argsort(-logits, kind="stable")[:TOP]]
            check = top + [i for i in random_ids if i not in top]
            seq, greedy, margins = list(ids), [], []
            for _ in range(GREEDY):
                row = model(torch.tensor([seq])).logits[0, -1].double().numpy()
                nxt = int(np.argmax(row))
                srt = np.sort(row)
                greedy.append(nxt)
                margins.append(float(srt[-1] - srt[-2]))
                seq.append(nxt)
            cases.append({
                "prompt_ids": ids,
                "logit_ids": check,
                "logits": [float(logits[i]) for i in check],
                "router_gaps": prompt_gaps,
                "greedy_ids": greedy,
                "greedy_margins": margins,
            })
    h = hashlib.sha256()
    with open(os.path.join(checkpoint, "model.safetensors"), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    with open(out, "w") as f:
        json.dump({
            "generator": "scripts/make_moe_reference.py, transformers " +
                         importlib.metadata.version("transformers") + ", torch " +
                         importlib.metadata.version("torch"),
            "checkpoint": os.path.basename(checkpoint),
            "safetensors_sha256": h.hexdigest(),
            "cases": cases,
        }, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
