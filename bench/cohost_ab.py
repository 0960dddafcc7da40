#!/usr/bin/env python3
"""Two cohost configurations, A and B (a binary, flags and a model each),
alternated: decode tok/s at batch 1 (128 greedy tokens), prefill tok/s (511
tokens), the aggregate of 16 sequences, each a fresh `cohost run` as
bench/compare_llamacpp.py measures them, and the decode run's peak RSS;
medians of REPS, and B / A.

Run: python3 bench/cohost_ab.py [--reps 4] [--model PATH] [--threads 2]
     [--a-binary PATH] [--a-flags "..."] [--b-binary PATH] [--b-flags "..."]
     [--a-model PATH] [--b-model PATH]
(binaries default to build/tools/cohost, each side's model to --model: two
files of one model, a GGUF and a Hugging Face directory, compare loaders).
Load the machine separately to see a shared-core case.
"""
import argparse
import os
import statistics
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_llamacpp as c  # noqa: E402

KINDS = ("decode", "prefill", "aggregate")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--model", default=c.DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    for side in ("a", "b"):
        ap.add_argument(f"--{side}-binary", default=None)
        ap.add_argument(f"--{side}-flags", default="")
        ap.add_argument(f"--{side}-model", default=None)
    args = ap.parse_args()
    sides = {
        side: types.SimpleNamespace(model=getattr(args, f"{side}_model") or args.model,
                                    threads=args.threads,
                                    cohost_binary=getattr(args, f"{side}_binary"),
                                    cohost_flags=getattr(args, f"{side}_flags"))
        for side in ("a", "b")
    }
    results = {side: {k: [] for k in KINDS + ("peak RSS MB (decode)",)} for side in sides}
    for rep in range(args.reps):
        for side in ("a", "b") if rep % 2 == 0 else ("b", "a"):
            for kind in KINDS:
                rate, rss_mb = c.cohost(sides[side], kind)
                results[side][kind].append(rate)
                if kind == "decode":
                    results[side]["peak RSS MB (decode)"].append(rss_mb)
    print(f"cpu={c.cpu_name()!r} reps={args.reps}")
    for side, s in sides.items():
        print(f"{side.upper()}: {s.cohost_binary or 'build/tools/cohost'} {s.cohost_flags} "
              f"model={os.path.basename(s.model.rstrip('/'))}")
    print("| measure | A | B | B / A |")
    print("|---|---|---|---|")
    for kind in results["a"]:
        a = statistics.median(results["a"][kind])
        b = statistics.median(results["b"][kind])
        print(f"| {kind} | {a:.0f} | {b:.0f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
