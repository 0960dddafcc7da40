#!/usr/bin/env python3
# Usage: bench/http_head_of_line.py PORT   (a `cohost serve --http-port PORT` serving the
# default model as "smol")
# Head-of-line blocking on the HTTP loop: while big prompts (1 MB of random
# words, refused for length after tokenizing) arrive back to back, how long
# does GET /health take? Prints median and max health latency in ms.
import json, random, statistics, sys, threading, time, urllib.request
port = int(sys.argv[1])
random.seed(1)
alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
text = " ".join("".join(random.choice(alpha) for _ in range(random.randint(2, 12))) for _ in range(160000))[:1_000_000]
body = json.dumps({"model": "smol", "prompt": text, "max_tokens": 1}).encode()
stop = False
def flood():
    while not stop:
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})).read()
        except urllib.error.HTTPError as e:
            e.read()
threads = [threading.Thread(target=flood) for _ in range(2)]
for t in threads: t.start()
time.sleep(1)
lat = []
for _ in range(100):
    t0 = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read()
    lat.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.02)
stop = True
for t in threads: t.join()
print(f"health latency ms: median {statistics.median(lat):.1f}, p90 {sorted(lat)[89]:.1f}, max {max(lat):.1f}")
