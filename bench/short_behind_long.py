#!/usr/bin/env python3
# Usage: bench/short_behind_long.py PORT [LONG_WORDS] [REPS]   (a `cohost serve
# --http-port PORT` serving the default model as "smol")
# One tenant (no `user`: every anonymous HTTP client's): a long prompt is
# prefilling when a short chat request arrives. How long until the short
# one's first token, against the same short request alone? Prints both TTFTs
# (ms) per repetition, the long prompt's total time, and the medians.
import json, statistics, sys, threading, time, urllib.request

port = int(sys.argv[1])
long_words = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
url = f"http://127.0.0.1:{port}/v1"


def post(path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return urllib.request.urlopen(req)


def short_ttft_ms(salt):
    # Streamed, so the first chunk with content is the first token.
    t0 = time.perf_counter()
    body = {"model": "smol", "stream": True, "max_tokens": 4,
            "messages": [{"role": "user", "content": f"Say hi ({salt})"}]}
    with post("/chat/completions", body) as r:
        for line in r:
            if line.startswith(b"data: ") and b'"content"' in line:
                return (time.perf_counter() - t0) * 1000
    return float("nan")


alone, behind, long_ms = [], [], []
for rep in range(reps):
    alone.append(short_ttft_ms(f"alone {rep}"))
    # A fresh long prompt each time: nothing from the prefix cache.
    prompt = f"Version {rep}. " + "word " * long_words
    done = {}

    def run_long():
        t0 = time.perf_counter()
        post("/completions", {"model": "smol", "prompt": prompt, "max_tokens": 1}).read()
        done["ms"] = (time.perf_counter() - t0) * 1000

    t = threading.Thread(target=run_long)
    t.start()
    time.sleep(0.5)  # the long prompt is prefilling
    behind.append(short_ttft_ms(f"behind {rep}"))
    t.join()
    long_ms.append(done["ms"])
    print(f"rep {rep}: short alone {alone[-1]:.0f} ms, behind the long prompt "
          f"{behind[-1]:.0f} ms; long prompt {long_ms[-1]:.0f} ms")
print(f"medians: short alone {statistics.median(alone):.0f} ms, behind "
      f"{statistics.median(behind):.0f} ms, long prompt {statistics.median(long_ms):.0f} ms")
