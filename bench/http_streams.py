#!/usr/bin/env python3
"""The OpenAI HTTP front door under many streams, and what it adds to TTFT.

1. Opens STREAMS concurrent streamed /v1/completions on loopback (asyncio, raw
   sockets, one connection each) against `cohost serve --http-port`, while
   sampling the server's threads and RSS from /proc; reports how many streams
   completed with [DONE], the peak of open streams, threads and RSS, and the
   client-side TTFT percentiles.
2. At low load (one request at a time), alternates the same greedy request
   over HTTP (this script, time to the first event carrying text) and gRPC
   (`cohost bench --concurrency 1`, client-side TTFT) and reports both
   medians: the difference is what the HTTP path adds.

Usage: bench/http_streams.py [--streams 1000] [--max-tokens 16] [--requests 40]
Starts its own server on the default model (standard library only).
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COHOST = os.path.join(ROOT, "build", "tools", "cohost")
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
LISTENING = re.compile(r"listening on (\S+):(\d+) \(metrics on \S*:(\d+)\), OpenAI HTTP API on :(\d+)")
PROMPT = "Once upon a time"


def start_server(streams):
    proc = subprocess.Popen(
        [COHOST, "serve", "--model", "smol=" + MODEL, "--port", "0", "--metrics-port", "0",
         "--http-port", "0", "--footprint-file", "none", "--max-queued-requests",
         str(streams + 16), "--max-seqs", "256", "--kv-cache-mb", "1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = LISTENING.search(line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(m.group(2)), int(m.group(4))
    raise SystemExit("the server did not start")


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024


def request_bytes(port, max_tokens):
    body = json.dumps({"model": "smol", "prompt": PROMPT, "max_tokens": max_tokens,
                       "temperature": 0, "ignore_eos": True, "stream": True}).encode()
    return (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


async def one_stream(port, payload, state):
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    state["open"] += 1
    state["peak_open"] = max(state["peak_open"], state["open"])
    writer.write(payload)
    await writer.drain()
    data, ttft = b"", None
    while b"data: [DONE]" not in data:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
        # The first event carries the first text (cohost sends no empty chunks).
        if ttft is None and b"data: " in data:
            ttft = (time.perf_counter() - t0) * 1000
    writer.close()
    state["open"] -= 1
    ok = data.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in data
    return ok, ttft


async def many_streams(port, streams, max_tokens, pid):
    payload = request_bytes(port, max_tokens)
    state = {"open": 0, "peak_open": 0, "peak_threads": 0, "peak_rss_mb": 0}
    threads0, rss0 = proc_status(pid)

    async def sample():
        while True:
            threads, rss = proc_status(pid)
            state["peak_threads"] = max(state["peak_threads"], threads)
            state["peak_rss_mb"] = max(state["peak_rss_mb"], rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one_stream(port, payload, state) for _ in range(streams)))
    elapsed = time.perf_counter() - t0
    sampler.cancel()
    ttfts = sorted(t for ok, t in results if ok and t is not None)
    return {
        "streams": streams,
        "completed": sum(1 for ok, _ in results if ok),
        "peak_open": state["peak_open"],
        "threads_idle": threads0, "threads_peak": state["peak_threads"],
        "rss_idle_mb": rss0, "rss_peak_mb": state["peak_rss_mb"],
        "seconds": round(elapsed, 1),
        "ttft_p50_ms": round(ttfts[len(ttfts) // 2], 1) if ttfts else None,
        "ttft_p99_ms": round(ttfts[int(len(ttfts) * 0.99) - 1], 1) if ttfts else None,
    }


def http_ttft(port, max_tokens):
    return asyncio.run(one_stream(port, request_bytes(port, max_tokens),
                                  {"open": 0, "peak_open": 0}))[1]


def grpc_ttft(grpc_port, max_tokens):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run = subprocess.run(
            [COHOST, "bench", "--server", "127.0.0.1:%d" % grpc_port, "--model", "smol",
             "--concurrency", "1", "--num-requests", "1", "--prompt", PROMPT, "--max-tokens",
             str(max_tokens), "--output", out.name], capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit("cohost bench: " + run.stderr)
        return json.load(open(out.name))["ttft_ms"]["p50"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    proc, grpc_port, http_port = start_server(args.streams)
    try:
        http_ttft(http_port, 2)  # warm both paths
        grpc_ttft(grpc_port, 2)
        http, grpc = [], []
        for _ in range(args.requests // 2):
            http.append(http_ttft(http_port, args.max_tokens))
            grpc.append(grpc_ttft(grpc_port, args.max_tokens))
        low = {"requests_each": len(http),
               "http_ttft_p50_ms": round(statistics.median(http), 2),
               "grpc_ttft_p50_ms": round(statistics.median(grpc), 2)}
        low["http_minus_grpc_ms"] = round(low["http_ttft_p50_ms"] - low["grpc_ttft_p50_ms"], 2)
        print(json.dumps({"low_load": low}))
        print(json.dumps({"many_streams": asyncio.run(
            many_streams(http_port, args.streams, args.max_tokens, proc.pid))}))
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    sys.exit(main())
