#!/usr/bin/env python3
"""128-token greedy generation on the default GGUF: cohost vs llama.cpp
(through llama-cpp-python, built locally), same thread count, same run.

Run: $VENV/bin/python bench/compare_llamacpp.py [--threads 2] [--reps 3]
($VENV: a virtualenv made as scripts/requirements-reference.txt says.)
Needs `pip install llama-cpp-python` (it compiles llama.cpp) and a Release build
of cohost in build/.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = "Once upon a time"
N = 128


def cohost_run(threads):
    out = subprocess.run(
        [os.path.join(ROOT, "build", "tools", "cohost"), "run", "--model", MODEL,
         "--prompt", PROMPT, "--temperature", "0", "--max-tokens", str(N), "--ignore-eos",
         "--json", "--threads", str(threads)],
        check=True, capture_output=True, text=True).stdout
    j = json.loads(out.splitlines()[-1])
    assert len(j["generated_ids"]) == N
    return j["tokens_per_second"], j["ttft_ms"]


def llamacpp_run(llm):
    llm.reset()
    tokens = llm.tokenize(PROMPT.encode(), add_bos=False)
    t0 = time.perf_counter()
    first = None
    n = 0
    for _ in llm.generate(tokens, top_k=1, temp=0.0, reset=True):
        n += 1
        if first is None:
            first = time.perf_counter()
        if n == N:
            break
    end = time.perf_counter()
    return (N - 1) / (end - first), (first - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    from llama_cpp import Llama
    import llama_cpp
    llm = Llama(model_path=MODEL, n_ctx=512, n_threads=args.threads, n_batch=512,
                verbose=False)
    rows = {"cohost": [], "llama.cpp": []}
    for _ in range(args.reps):  # interleaved so machine noise hits both alike
        rows["cohost"].append(cohost_run(args.threads))
        rows["llama.cpp"].append(llamacpp_run(llm))
    print(f"threads={args.threads} reps={args.reps} prompt={PROMPT!r} tokens={N} "
          f"llama-cpp-python {llama_cpp.__version__}")
    print("| engine | decode tok/s (median) | TTFT ms (median) |")
    print("|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {statistics.median(v[0] for v in vals):.1f} | "
              f"{statistics.median(v[1] for v in vals):.1f} |")


if __name__ == "__main__":
    main()
