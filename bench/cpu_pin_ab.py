#!/usr/bin/env python3
"""cohost with and without --cpu-pin, alternated: decode tok/s at batch 1,
prefill tok/s (511 tokens) and the aggregate of 16 sequences, each a fresh
`cohost run` as bench/compare_llamacpp.py measures them; medians of REPS.

Run: python3 bench/cpu_pin_ab.py [REPS] (a Release build in build/; the
default model). Load the machine separately to see the shared-core case.
"""
import os
import statistics
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_llamacpp as c  # noqa: E402

KINDS = ("decode", "prefill", "aggregate")


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    results = {flags: {k: [] for k in KINDS} for flags in ("", "--cpu-pin")}
    for rep in range(reps):
        order = ["", "--cpu-pin"] if rep % 2 == 0 else ["--cpu-pin", ""]
        for flags in order:
            args = types.SimpleNamespace(model=c.DEFAULT_MODEL, threads=2, cohost_flags=flags)
            for kind in KINDS:
                results[flags][kind].append(c.cohost(args, kind)[0])
    print(f"cpu={c.cpu_name()!r} reps={reps}")
    print("| measure | unpinned | pinned | pinned / unpinned |")
    print("|---|---|---|---|")
    for kind in KINDS:
        off = statistics.median(results[""][kind])
        on = statistics.median(results["--cpu-pin"][kind])
        print(f"| {kind} | {off:.0f} | {on:.0f} | {on / off:.2f}x |")


if __name__ == "__main__":
    main()
