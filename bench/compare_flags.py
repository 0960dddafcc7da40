#!/usr/bin/env python3
"""cohost against itself under two sets of `cohost run` flags (say
--kv-dtype f32 and f16), two builds (--bin-a, --bin-b: a copy of an
earlier build's tools/cohost), two environments (--env-a, --env-b: say
COHOST_CPU_KERNELS=avx512vnni against none) or two files of one model
(--model-a, --model-b: a GGUF and a Hugging Face directory), interleaved in
one run, each repetition's first side alternating, so machine noise hits
both: the measurements of compare_llamacpp.py (decode at batch 1, prefill of
a 511-token prompt, peak RSS, aggregate decode of 16 sequences) and decode at
batch 1 after a 1,533-token prompt, where attention reads a long cache.

Run: python3 bench/compare_flags.py --a "--kv-dtype f32" --b "--kv-dtype f16"
     [--bin-a PATH] [--bin-b PATH] [--env-a "NAME=VALUE ..."] [--env-b ...]
     [--model PATH] [--model-a PATH] [--model-b PATH] [--threads 2] [--reps 3]
(a Release build of cohost in build/). Prints a markdown table and the CPU.
Load the machine separately to see a shared-core case.
"""
import argparse
import contextlib
import json
import os
import shlex
import statistics

import compare_llamacpp as cl

LONG_PROMPT = cl.PREFILL_TEXT * 3


def long_decode(args, flags):
    """Decode tok/s after LONG_PROMPT, and the run's peak RSS."""
    cmd = [args.cohost_binary, "run", "--model", args.model,
           "--temperature", "0", "--json", "--threads", str(args.threads),
           "--prompt", LONG_PROMPT, "--max-tokens", str(cl.DECODE_TOKENS), "--ignore-eos"]
    out, rss = cl.timed(cmd + shlex.split(flags))
    j = json.loads(out.splitlines()[-1])
    assert len(j["generated_ids"]) == cl.DECODE_TOKENS
    return j["tokens_per_second"], rss


@contextlib.contextmanager
def environment(assignments):
    """os.environ with `assignments` ("NAME=VALUE ...") added, for the
    processes started inside."""
    saved = dict(os.environ)
    os.environ.update(a.split("=", 1) for a in shlex.split(assignments))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="first flag set")
    ap.add_argument("--b", required=True, help="second flag set")
    default_bin = os.path.join(cl.ROOT, "build", "tools", "cohost")
    ap.add_argument("--bin-a", default=default_bin, help="the cohost binary of the first")
    ap.add_argument("--bin-b", default=default_bin, help="the cohost binary of the second")
    ap.add_argument("--env-a", default="", help="NAME=VALUE ... for the first's processes")
    ap.add_argument("--env-b", default="", help="NAME=VALUE ... for the second's processes")
    ap.add_argument("--model", default=cl.DEFAULT_MODEL)
    ap.add_argument("--model-a", default=None, help="the first's model (default --model)")
    ap.add_argument("--model-b", default=None, help="the second's model (default --model)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    kinds = ("decode", "prefill", "aggregate", "long decode")
    model_a, model_b = args.model_a or args.model, args.model_b or args.model
    two_builds, two_models = args.bin_a != args.bin_b, model_a != model_b
    sides = [(f"`{flags}`" + (f" ({binary})" if two_builds else "") + (f" {env}" if env else "") +
              (f" {os.path.basename(model.rstrip('/'))}" if two_models else ""),
              flags, binary, env, model)
             for flags, binary, env, model in ((args.a, args.bin_a, args.env_a, model_a),
                                               (args.b, args.bin_b, args.env_b, model_b))]
    rows = [{k: [] for k in kinds} for _ in sides]
    for rep in range(args.reps):  # interleaved, the first side alternating
        order = [0, 1] if rep % 2 == 0 else [1, 0]
        for kind in kinds:
            for i in order:
                _, flags, binary, env, model = sides[i]
                args.cohost_binary, args.cohost_flags, args.model = binary, flags, model
                with environment(env):
                    rows[i][kind].append(long_decode(args, flags) if kind == "long decode"
                                         else cl.cohost(args, kind))
    print(f"model={os.path.basename(model_a.rstrip('/'))}"
          + (f" / {os.path.basename(model_b.rstrip('/'))}" if two_models else "")
          + f" threads={args.threads} reps={args.reps} cpu={cl.cpu_name()!r}")
    print("| flags | decode tok/s | prefill tok/s, 511 tokens | aggregate tok/s, 16 seqs | "
          "decode tok/s after 1,533 tokens | peak RSS MB, long decode |")
    print("|---|---|---|---|---|---|")
    med = []
    for (label, *_), r in zip(sides, rows):
        med.append([statistics.median(v[0] for v in r[k]) for k in kinds] +
                   [statistics.median(v[1] for v in r["long decode"])])
        cells = " | ".join(f"{x:.1f}" if i == 0 else f"{x:.0f}" for i, x in enumerate(med[-1]))
        print(f"| {label} | {cells} |")
    ratio = " | ".join(f"{b / a:.2f}x" for a, b in zip(med[0], med[1]))
    print(f"| second / first | {ratio} |")


if __name__ == "__main__":
    main()
