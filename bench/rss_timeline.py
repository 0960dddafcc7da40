#!/usr/bin/env python3
"""Where a process's resident memory peaks, and of what it is made there.

Runs the command given as arguments, samples /proc/PID/status every
millisecond (VmRSS, RssAnon, RssFile, Threads), and prints the samples from
150 ms before the highest VmRSS to 50 ms after it, in MiB. A sampled peak can
miss a spike shorter than a millisecond: /usr/bin/time's maximum is the
figure to report; this says when and where it happens.

    python3 bench/rss_timeline.py build/tools/cohost run --model M --prompt "..."
"""
import subprocess
import sys
import time

FIELDS = ("VmRSS", "RssAnon", "RssFile", "Threads")


def sample(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in FIELDS:
                out[key] = int(value.split()[0])
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.time()
    rows = []
    while proc.poll() is None:
        try:
            rows.append((time.time() - start, sample(proc.pid)))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass  # exited between poll and read
        time.sleep(0.001)
    if not rows:
        sys.exit("the process ended before the first sample")
    peak_t, _ = max(rows, key=lambda r: r[1].get("VmRSS", 0))
    for t, d in rows:
        if peak_t - 0.15 <= t <= peak_t + 0.05:
            mark = "  <- peak" if t == peak_t else ""
            print(f"{t * 1e3:8.1f} ms  rss {d.get('VmRSS', 0) / 1024:6.1f}  "
                  f"anon {d.get('RssAnon', 0) / 1024:6.1f}  file {d.get('RssFile', 0) / 1024:6.1f}  "
                  f"threads {d.get('Threads')}{mark}")


if __name__ == "__main__":
    main()
