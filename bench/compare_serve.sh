#!/usr/bin/env bash
# Two `cohost` binaries (or one with two flag sets) serving the default model
# under the same `cohost bench` load, interleaved A B A B ... so that this
# machine's drift lands on both. Prints one markdown row per run.
# Usage: bench/compare_serve.sh COHOST_A COHOST_B [ROUNDS] -- [cohost bench flags]
#   SERVE_A / SERVE_B: extra `cohost serve` flags for each side (default none).
# Example (a closed loop of 8 streams, 512-token prompts, 64 tokens each):
#   bench/compare_serve.sh /work/old/build/tools/cohost build/tools/cohost 2 -- \
#     --concurrency 8 --prompt-tokens 512 --max-tokens 64 --ignore-eos --num-requests 48
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
a="$1" b="$2"
shift 2
rounds=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "| run | side | out tok/s | total tok/s | TTFT p50 (ms) | TTFT p99 (ms) | TPOT p50 (ms) | ITL p99 (ms) |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  for side in A B; do
    if [ "$side" = A ]; then bin="$a" extra="${SERVE_A:-}"; else bin="$b" extra="${SERVE_B:-}"; fi
    # shellcheck disable=SC2086
    "$bin" serve --model "m=$model" --host 127.0.0.1 --port 0 --metrics-port 0 \
      $extra 2> "$out/serve.log" &
    server=$!
    for _ in $(seq 1 300); do grep -q "listening on" "$out/serve.log" && break; sleep 0.2; done
    addr="$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$out/serve.log" | head -1)"
    "$b" bench --server "$addr" --model m --seed 7 --temperature 0 --output "$out/r.json" "$@" \
      > /dev/null 2>&1
    kill "$server"
    wait "$server" 2> /dev/null || true
    python3 - "$out/r.json" "$round" "$side" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def g(k, p): return r[k][p] if r.get(k) else float("nan")
tput = r.get("output_token_throughput", float("nan"))
total = r.get("total_token_throughput", float("nan"))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {tput:.1f} | {total:.0f} | {g('ttft_ms','p50'):.0f} | "
      f"{g('ttft_ms','p99'):.0f} | {g('tpot_ms','p50'):.1f} | {g('itl_ms','p99'):.0f} |")
PY
  done
done
