#!/usr/bin/env python3
"""Plots cohost_sim's CSV rows (--csv) as devices needed per policy and workload.

    python3 bench/sim/plot.py sim.csv bench/sim/devices.png

Needs matplotlib (pip install matplotlib). Rows: workload, models, alpha,
policy (dedicated, static, dynamic, lazy), devices, attainment, ttft_p50_s, ttft_p99_s,
busy, goodput,
prefix_hit_fraction (a run with --prefix-cache off has "-nocache" after its workload).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POLICIES = ["dedicated", "static", "dynamic", "lazy"]


def main(src, dst):
    rows = list(csv.reader(open(src)))
    groups = []
    devices = {}
    for workload, models, alpha, policy, n, *_ in rows:
        key = f"{workload}\n{models} models, a={alpha}"
        if key not in devices:
            groups.append(key)
            devices[key] = {}
        devices[key][policy] = int(n)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4))
    width = 0.2
    for i, policy in enumerate(POLICIES):
        xs = [g + (i - 1.5) * width for g in range(len(groups))]
        ys = [devices[k].get(policy, 0) for k in groups]
        bars = ax.bar(xs, ys, width, label=policy)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7)
    ax.set_ylabel("H200s for 99% TTFT <= target")
    ax.set_title("Devices needed, simulated (bench/sim, Llama-3-8B class on H200)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
