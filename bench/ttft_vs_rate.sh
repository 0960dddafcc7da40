#!/usr/bin/env bash
# TTFT p50/p99 under a rising Poisson request rate, chunked prefill on and off,
# on the default model (CPU). Prints one markdown row per (mode, rate).
# Usage: [MODES="chunked64 chunked512 whole"] bench/ttft_vs_rate.sh [RATES...]
#   chunked64:  64-token steps (a prompt arrives in 64-token chunks between decodes)
#   chunked512: 512-token steps, at most 64 tokens of one prompt per step
#   whole:      512-token steps, a prompt admitted only whole (no chunking)
# RATES default to 0.25 0.5 1.0 requests/s.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cohost="$root/build/tools/cohost"
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
rates=("${@:-0.25 0.5 1.0}")
[ $# -gt 0 ] || rates=(0.25 0.5 1.0)
out="$(mktemp -d)"

echo "| prefill | rate (req/s) | TTFT p50 (ms) | TTFT p99 (ms) | TPOT p50 (ms) | ITL p99 (ms) | ok |"
echo "|---|---|---|---|---|---|---|"
for mode in ${MODES:-chunked64 chunked512 whole}; do
  # Prefix caching off: every run replays the same seeded prompts.
  case "$mode" in
    chunked64) flags=(--no-prefix-cache --max-batch-tokens 64) ;;
    chunked512) flags=(--no-prefix-cache --max-batch-tokens 512 --max-prefill-chunk 64) ;;
    whole) flags=(--no-prefix-cache --max-batch-tokens 512 --no-chunked-prefill) ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  "$cohost" serve --model "m=$model" --host 127.0.0.1 --port 0 --metrics-port 0 \
    "${flags[@]}" 2> "$out/serve.log" &
  server=$!
  for _ in $(seq 1 300); do grep -q "listening on" "$out/serve.log" && break; sleep 0.2; done
  addr="$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$out/serve.log")"
  for rate in "${rates[@]}"; do
    "$cohost" bench --server "$addr" --model m --rate "$rate" --num-requests 12 \
      --prompt-tokens 192 --max-tokens 16 --seed 7 --output "$out/r.json" > /dev/null 2>&1
    python3 - "$out/r.json" "$mode" "$rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def g(k, p): return r[k][p] if r.get(k) else float("nan")
print(f"| {sys.argv[2]} | {sys.argv[3]} | {g('ttft_ms','p50'):.0f} | {g('ttft_ms','p99'):.0f} | "
      f"{g('tpot_ms','p50'):.0f} | {g('itl_ms','p99'):.0f} | {r['requests']['completed'] if isinstance(r['requests'], dict) else r['requests']} |")
PY
  done
  kill -TERM $server; wait $server || true
done
