#!/usr/bin/env python3
"""Greedy tokens of cohost's fast CPU path and of llama.cpp, each against the
exact fp32 computation of the same GGUF (`cohost run --cpu-precision reference`):
how many of the first 16 tokens each engine shares with it, over eight prompts.

    ~/.cache/llama-venv/bin/python bench/greedy_vs_exact.py --model M.gguf
    ~/.cache/llama-venv/bin/python bench/greedy_vs_exact.py \\
        --quantize models/SmolLM2-135M-Instruct.F16.gguf --ftype Q2_K --model /tmp/q2k.gguf

--quantize writes --model first with llama.cpp's own quantizer, every matrix
it can in --ftype (`pure`: the 576-wide rows fall back to Q4_0). Needs
llama-cpp-python (bench/compare_llamacpp.py says how to install it).
"""
import argparse
import ctypes
import json
import subprocess
import sys

PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "Water boils at",
           "The quick brown fox", "In 1492, Columbus", "My favourite food is",
           "To make a cake, you need"]
TOKENS = 16


def cohost(binary, model, prompt, extra):
    out = subprocess.run([binary, "run", "--model", model, "--prompt", prompt, "--max-tokens",
                          str(TOKENS), "--temperature", "0", "--ignore-eos", "--threads", "2",
                          "--json"] + extra, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def leading(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--binary", default="build/tools/cohost")
    ap.add_argument("--quantize", help="an F16/F32 GGUF to quantize into --model first")
    ap.add_argument("--ftype", default="Q2_K", help="with --quantize: Q2_K or Q3_K")
    args = ap.parse_args()
    import llama_cpp
    if args.quantize:
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = {"Q2_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K,
                   "Q3_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S}[args.ftype]
        p.pure = True
        if llama_cpp.llama_model_quantize(args.quantize.encode(), args.model.encode(),
                                          ctypes.byref(p)) != 0:
            sys.exit("quantize failed")
    llm = llama_cpp.Llama(model_path=args.model, n_threads=2, n_ctx=256, verbose=False)
    totals = [0, 0]
    print("| prompt | cohost int8 | llama.cpp |")
    print("|---|---|---|")
    for prompt in PROMPTS:
        exact = cohost(args.binary, args.model, prompt, ["--cpu-precision", "reference"])
        fast = cohost(args.binary, args.model, prompt, [])
        llm.reset()
        theirs = []
        for tok in llm.generate(exact["prompt_ids"], temp=0.0, top_k=1):
            theirs.append(tok)
            if len(theirs) == TOKENS:
                break
        ours = leading(fast["generated_ids"], exact["generated_ids"])
        them = leading(theirs, exact["generated_ids"])
        totals[0] += ours
        totals[1] += them
        print(f"| {prompt} | {ours}/{TOKENS} | {them}/{TOKENS} |")
    print(f"| all | {totals[0]}/{TOKENS * len(PROMPTS)} | {totals[1]}/{TOKENS * len(PROMPTS)} |")


if __name__ == "__main__":
    main()
