#!/usr/bin/env python3
"""Writes tests/data/llamacpp_reference.json: what llama.cpp (through
llama-cpp-python, compiled on this machine) computes on the default model and
its K-quant and bf16 variants (scripts/make_model_variants.sh), for the fast
paths' check against llama.cpp (tests/runtime/model/llamacpp_reference_test.cc).

Per model and prompt: llama.cpp's prompt token ids; its greedy continuation
(24 tokens, past an end-of-text token too); at the prompt's last position the logits of its top 20 ids and
of 20 fixed random ids; and, teacher-forced along the greedy continuation,
each step's top-1 minus top-2 logit margin. The models' sha256 are recorded:
the test names a mismatch (a variant made by another numpy) instead of
comparing against another file's numbers.

Usage: make_llamacpp_reference.py [--only NAME[,NAME...]] [OUT.json]
  (a venv with llama-cpp-python and numpy; scripts/requirements-reference.txt)
  --only recomputes the models named (of MODELS) and keeps OUT's others as
  they are: numbers made by another build of llama.cpp (another CPU's
  kernels) stay what the test was tuned on.
"""
import hashlib
import importlib.metadata
import json
import os
import sys

import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["Q4_1", "Q4_K_M", "Q5_K_M", "BF16", "Qwen3-Q8_0", "Qwen3MoE-Q8_0", "Mixtral-Q8_0"]
# Open-ended prompts, where a 135M model's next tokens are often near-ties,
# and sequences it continues with clear margins (the free-running check).
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village,",
    "Water boils at a temperature of",
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "10, 20, 30, 40, 50,",
    "5, 10, 15, 20, 25,",
    "100, 200, 300, 400,",
    "a b c d e f g h",
    "A, B, C, D, E, F, G,",
]
GREEDY = 24
TOP = 20


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    args = sys.argv[1:]
    only = None
    if args[:1] == ["--only"] and len(args) >= 2:
        only = args[1].split(",")
        args = args[2:]
        if not set(only) <= set(MODELS):
            sys.exit(f"--only: not among {MODELS}")
    out = args[0] if args else os.path.join(ROOT, "tests", "data", "llamacpp_reference.json")
    kept = {}
    if only is not None:
        with open(out) as f:
            kept = {m["file"]: m for m in json.load(f)["models"]}
    rng = np.random.default_rng(7)
    models = []
    for name in MODELS:
        path = os.path.join(ROOT, "models", f"SmolLM2-135M-Instruct.{name}.gguf")
        # Every model shares the default model's vocabulary: the random ids
        # are drawn for each in turn, run or kept.
        random_ids = sorted(int(i) for i in rng.choice(49152, size=TOP, replace=False))
        if only is not None and name not in only:
            models.append(kept[os.path.basename(path)])
            continue
        # The KV cache in F32 (GGML_TYPE_F32 = 0), as cohost's.
        llm = Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False,
                    type_k=0, type_v=0)
        assert llm.n_vocab() == 49152
        cases = []
        for prompt in PROMPTS:
            ids = llm.tokenize(prompt.encode(), add_bos=False, special=False)
            llm.reset()
            llm.eval(ids)
            greedy = []
            for _ in range(GREEDY):
                nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                greedy.append(nxt)
                llm.eval([nxt])
            scores = np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
            last = scores[len(ids) - 1]
            top = [int(i) for i in np.argsort(-last, kind="stable")[:TOP]]
            check = top + [i for i in random_ids if i not in top]
            margins = []
            for step in range(GREEDY):
                row = np.sort(scores[len(ids) - 1 + step])
                margins.append(float(row[-1] - row[-2]))
            cases.append({
                "prompt": prompt,
                "prompt_ids": [int(i) for i in ids],
                "greedy_ids": greedy,
                "greedy_margins": margins,
                "logit_ids": check,
                "logits": [float(last[i]) for i in check],
            })
        models.append({"file": os.path.basename(path), "sha256": sha256(path), "cases": cases})
        del llm
    with open(out, "w") as f:
        json.dump({
            "generator": "scripts/make_llamacpp_reference.py, llama-cpp-python " +
                         importlib.metadata.version("llama-cpp-python"),
            "models": models,
        }, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
