#!/usr/bin/env python3
"""Writes tests/data/forward_reference_smollm2.json: an independent reference for
cohost's forward pass on the default model.

Hugging Face transformers loads the same GGUF (it dequantizes the tensors and
undoes llama.cpp's Q/K row permutation itself) and runs it in float32. For each
prompt we keep the prompt ids, the last-position logits at the 64 highest ids plus
256 fixed random ids, and a 32-token greedy continuation that ignores EOS, with
the top-1/top-2 logit margin at each step so near-ties are visible.

Run: $VENV/bin/python scripts/make_forward_reference.py
($VENV: a virtualenv made as scripts/requirements-reference.txt says.)
(needs torch, transformers, gguf; not needed by the tests, which read the JSON).
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "models")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "tests", "data", "forward_reference_smollm2.json")
STEPS = 32

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "<|im_start|>user\nWhat is 12 times 7? Answer briefly.<|im_end|>\n<|im_start|>assistant\n",
]


def main():
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1234)
    probe_ids = torch.randperm(vocab, generator=gen)[:256].tolist()

    cases = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            out = model(torch.tensor([ids]), use_cache=True)
            logits = out.logits[0, -1].float()
            top = torch.topk(logits, 64)
            check_ids = sorted(set(top.indices.tolist()) | set(probe_ids))
            past = out.past_key_values
            generated, margins = [], []
            step_logits = logits
            for _ in range(STEPS):
                t2 = torch.topk(step_logits, 2)
                nxt = int(t2.indices[0])
                generated.append(nxt)
                margins.append(float(t2.values[0] - t2.values[1]))
                out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                step_logits = out.logits[0, -1].float()
            cases.append({
                "prompt": text,
                "prompt_ids": ids,
                "logit_ids": check_ids,
                "logits": [float(logits[i]) for i in check_ids],
                "greedy_ids": generated,
                "greedy_margins": margins,
                "greedy_text": tok.decode(generated),
            })
            print(repr(text), "->", repr(tok.decode(generated)), "min margin",
                  min(margins), file=sys.stderr)
    import transformers
    doc = {
        "model": GGUF,
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}, float32",
        "steps": STEPS,
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
