#!/usr/bin/env python3
"""cohost against llama.cpp (llama-cpp-python, compiled on this machine) on the
same GGUF and thread count, interleaved in one run so machine noise hits both:
decode tok/s at batch 1 (128 greedy tokens), prefill tok/s on a 511-token
prompt, and each process's peak RSS. Every measurement is a fresh process
under /usr/bin/time, so a peak is that process's alone. For cohost also the
aggregate decode of 16 sequences at once (16 prompts, 128 greedy tokens each:
all tokens over the longest request's time) and its ratio to batch 1;
llama-cpp-python's API decodes one sequence, so llama.cpp has no such row.

Run: $VENV/bin/python bench/compare_llamacpp.py [--model PATH] [--threads 2]
     [--reps 3] [--cohost-flags "--cpu-precision reference"]
($VENV: a virtualenv with llama-cpp-python, as scripts/requirements-reference.txt
says; a Release build of cohost in build/.) Prints a markdown table and the CPU.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DECODE_PROMPT = "Once upon a time"
DECODE_TOKENS = 128
# 34 repeats of a sentence: 511 tokens for SmolLM2's tokenizer (cohost's
# gives llama.cpp's ids: llamacpp_reference_test); each engine's rate is its
# own prompt count over its own time.
PREFILL_TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps. " * 34
AGGREGATE_SEQS = 16


def timed(cmd):
    """(stdout, peak RSS in MB) of `cmd` run under GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, check=True, capture_output=True,
                         text=True)
    rss_kb = int(out.stderr.strip().splitlines()[-1])
    return out.stdout, rss_kb / 1024


def worker(args):
    """One llama.cpp measurement in this process; prints JSON."""
    from llama_cpp import Llama
    llm = Llama(model_path=args.model, n_ctx=1024, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=1024, verbose=False)
    if args.worker == "decode":
        tokens = llm.tokenize(DECODE_PROMPT.encode(), add_bos=False)
        first = None
        n = 0
        for _ in llm.generate(tokens, top_k=1, temp=0.0, reset=True):
            n += 1
            if first is None:
                first = time.perf_counter()
            if n == DECODE_TOKENS:
                break
        rate = (DECODE_TOKENS - 1) / (time.perf_counter() - first)
    else:
        ids = llm.tokenize(PREFILL_TEXT.encode(), add_bos=False)
        start = time.perf_counter()
        llm.eval(ids)
        rate = len(ids) / (time.perf_counter() - start)
    print(json.dumps({"rate": rate}))


def llamacpp(args, kind):
    out, rss = timed([sys.executable, os.path.abspath(__file__), "--worker", kind, "--model",
                      args.model, "--threads", str(args.threads)])
    return json.loads(out.splitlines()[-1])["rate"], rss


def cohost(args, kind):
    cmd = [getattr(args, "cohost_binary", None) or os.path.join(ROOT, "build", "tools", "cohost"),
           "run", "--model", args.model,
           "--temperature", "0", "--json", "--threads", str(args.threads)]
    cmd += shlex.split(args.cohost_flags)
    if kind == "aggregate":
        for i in range(AGGREGATE_SEQS):
            cmd += ["--prompt", f"Story number {i + 1}: once upon a time in a land far away"]
        cmd += ["--max-tokens", str(DECODE_TOKENS), "--ignore-eos",
                "--max-seqs", str(AGGREGATE_SEQS)]
        out, rss = timed(cmd)
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(rows) == AGGREGATE_SEQS
        tokens = sum(len(r["generated_ids"]) for r in rows)
        return tokens / (max(r["total_ms"] for r in rows) / 1000), rss
    if kind == "decode":
        cmd += ["--prompt", DECODE_PROMPT, "--max-tokens", str(DECODE_TOKENS), "--ignore-eos"]
    else:
        cmd += ["--prompt", PREFILL_TEXT, "--max-tokens", "1"]
    out, rss = timed(cmd)
    j = json.loads(out.splitlines()[-1])
    if kind == "decode":
        assert len(j["generated_ids"]) == DECODE_TOKENS
        return j["tokens_per_second"], rss
    return len(j["prompt_ids"]) / (j["ttft_ms"] / 1000), rss


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cohost-flags", default="", help="extra cohost run flags")
    ap.add_argument("--worker", choices=["decode", "prefill"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    import llama_cpp
    rows = {"cohost": {"decode": [], "prefill": []}, "llama.cpp": {"decode": [], "prefill": []}}
    aggregate = []
    for _ in range(args.reps):  # interleaved
        for kind in ("decode", "prefill"):
            rows["cohost"][kind].append(cohost(args, kind))
            rows["llama.cpp"][kind].append(llamacpp(args, kind))
        aggregate.append(cohost(args, "aggregate")[0])
    size_mb = os.path.getsize(args.model) / 2**20
    print(f"model={os.path.basename(args.model)} ({size_mb:.0f} MB) threads={args.threads} "
          f"reps={args.reps} cohost flags={args.cohost_flags!r} "
          f"llama-cpp-python {llama_cpp.__version__} cpu={cpu_name()!r}")
    print("| engine | decode tok/s (median) | prefill tok/s, ~512 tokens (median) | "
          "peak RSS MB (decode run, median) |")
    print("|---|---|---|---|")
    med = {}
    for name, r in rows.items():
        med[name] = (statistics.median(v[0] for v in r["decode"]),
                     statistics.median(v[0] for v in r["prefill"]),
                     statistics.median(v[1] for v in r["decode"]))
        print(f"| {name} | {med[name][0]:.1f} | {med[name][1]:.0f} | {med[name][2]:.0f} |")
    c, l = med["cohost"], med["llama.cpp"]
    print(f"| cohost / llama.cpp | {c[0] / l[0]:.2f}x | {c[1] / l[1]:.2f}x | {c[2] / l[2]:.2f}x |")
    agg = statistics.median(aggregate)
    print(f"\ncohost aggregate decode, {AGGREGATE_SEQS} sequences: {agg:.0f} tok/s (median), "
          f"{agg / c[0]:.1f}x its batch-1 decode")


if __name__ == "__main__":
    main()
