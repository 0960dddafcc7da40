#!/usr/bin/env bash
# Usage: bench/http_whole_reply.sh COHOST_BINARY [MODEL.gguf]
# Does building a large whole (non-streamed) reply hold the HTTP loop? Starts
# `cohost serve --http-port 18125` on the model (default: the default model),
# asks for one chat completion of 8 choices x 1000 tokens with 20 top logprobs
# (about 11 MB of JSON), and meanwhile times GET /health every 50 ms from a
# process of its own (curl; a probe thread in the client's Python process
# would wait on the GIL while the reply is read). Prints the reply's size and
# the slowest health checks.
set -euo pipefail
bin="$1"
model="${2:-$(cd "$(dirname "$0")/.." && pwd)/models/SmolLM2-135M-Instruct.Q8_0.gguf}"
port=18125
log="$(mktemp)"
probes="$(mktemp)"
"$bin" serve --model m="$model" --port 0 --metrics-port 0 --http-port "$port" \
  --footprint-file none >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log" "$probes"' EXIT
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break
  sleep 0.2
done
(
  while kill -0 $server 2>/dev/null && [ ! -e "$probes.stop" ]; do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/health" >>"$probes"
    sleep 0.05
  done
) &
prober=$!
body='{"model":"m","messages":[{"role":"user","content":"write"}],"max_tokens":1000,"n":8,"logprobs":true,"top_logprobs":20,"ignore_eos":true}'
curl -s -o /dev/null -w 'reply: %{size_download} bytes in %{time_total} s\n' \
  -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/chat/completions"
touch "$probes.stop"
wait $prober
rm -f "$probes.stop"
sort -n "$probes" | awk '{v[NR]=$1} END {printf "health checks: %d, median %.1f ms, max %.1f ms\n", NR, v[int((NR+1)/2)]*1000, v[NR]*1000}'
