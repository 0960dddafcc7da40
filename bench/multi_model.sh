#!/usr/bin/env bash
# Three models in one `cohost serve` (one executor, one KV pool) against three
# single-model servers given the same total KV memory, at the same offered load
# per model: `cohost bench` runs against the three models at once. Prints one
# markdown row per (setup, model) and one per setup: TTFT p50/p99, output
# throughput, the servers' summed peak RSS, and the largest prompt each model
# accepts (its KV share, capped by the context).
# Usage: [KV_MB=384] [RATES="0.6 0.15 0.15"] [REQUESTS=16] [PROMPT_TOKENS=128]
#        [BURSTINESS=1] bench/multi_model.sh
# BURSTINESS below 1 sends each model's requests in gamma-distributed bursts
# (cohost bench --burstiness): the case where one model's burst can borrow
# the KV memory the others leave idle.
# The models: the default GGUF and its F16 and Q8_0 variants
# (scripts/make_model_variants.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cohost="$root/build/tools/cohost"
dir="$root/models"
models=(q4="$dir/SmolLM2-135M-Instruct.Q4_1.gguf" f16="$dir/SmolLM2-135M-Instruct.F16.gguf"
  q8="$dir/SmolLM2-135M-Instruct.Q8_0.gguf")
kv_mb="${KV_MB:-384}"
read -r -a rates <<< "${RATES:-0.6 0.15 0.15}"
requests="${REQUESTS:-16}"
prompt_tokens="${PROMPT_TOKENS:-128}"
burstiness="${BURSTINESS:-1}"
out="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

# start_server LOG KV_MB --model ... ; sets server_pid and server_addr
start_server() {
  local log="$1" kv="$2"
  shift 2
  "$cohost" serve "$@" --host 127.0.0.1 --port 0 --metrics-port 0 --kv-cache-mb "$kv" \
    --no-prefix-cache 2> "$log" &
  server_pid=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 0.2; done
  server_addr="$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$log")"
  [ -n "$server_addr" ] || { cat "$log" >&2; exit 1; }
}

peak_rss_mb() {  # summed VmHWM of the given pids
  local total=0
  for pid in "$@"; do
    total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")))
  done
  echo $((total / 1024))
}

# run_load SETUP ADDR_FOR_q4 ADDR_FOR_f16 ADDR_FOR_q8
run_load() {
  local setup="$1"
  shift
  local i=0 bench=()
  for spec in "${models[@]}"; do
    local name="${spec%%=*}" addr="$1"
    shift
    "$cohost" models --server "$addr" --json > "$out/$setup-$name-models.json"
    "$cohost" bench --server "$addr" --model "$name" --rate "${rates[$i]}" \
      --num-requests "$requests" --prompt-tokens "$prompt_tokens" --burstiness "$burstiness" \
      --max-tokens 16 --ignore-eos \
      --seed $((7 + i)) --output "$out/$setup-$name.json" > "$out/$setup-$name.log" 2>&1 &
    bench+=("$!:$setup-$name")
    i=$((i + 1))
  done
  for b in "${bench[@]}"; do
    wait "${b%%:*}" || { echo "cohost bench (${b#*:}) failed:" >&2; tail -5 "$out/${b#*:}.log" >&2; }
  done
}

report() {
  python3 - "$out" "$1" "$2" "${models[@]}" <<'PY'
import json, sys
out, setup, rss, specs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
total_tps = 0.0
for spec in specs:
    name = spec.split("=")[0]
    r = json.load(open(f"{out}/{setup}-{name}.json"))
    listing = json.load(open(f"{out}/{setup}-{name}-models.json"))
    listing = listing["models"] if isinstance(listing, dict) else listing
    info = next(m for m in listing if m["name"] == name)
    largest = min(int(info["kv_cache_tokens"]), int(info["context_length"]))
    total_tps += r["output_token_throughput"]
    print(f"| {setup} | {name} | {r['ttft_ms']['p50']:.0f} | {r['ttft_ms']['p99']:.0f} | "
          f"{r['output_token_throughput']:.1f} | {r['requests']['completed']}/{r['requests']['issued']} | "
          f"{largest} |  |")
print(f"| {setup} | all | | | {total_tps:.1f} | | | {rss} |")
PY
}

echo "| setup | model | TTFT p50 (ms) | TTFT p99 (ms) | output tok/s | ok | largest prompt (tokens) | peak RSS (MB) |"
echo "|---|---|---|---|---|---|---|---|"

start_server "$out/shared.log" "$kv_mb" \
  --model "${models[0]}" --model "${models[1]}" --model "${models[2]}"
run_load shared "$server_addr" "$server_addr" "$server_addr"
rss="$(peak_rss_mb "$server_pid")"
kill -TERM "$server_pid"; wait "$server_pid" || true
report shared "$rss"

pids=() addrs=()
for spec in "${models[@]}"; do
  start_server "$out/sep-${spec%%=*}.log" $((kv_mb / 3)) --model "$spec"
  pids+=("$server_pid") addrs+=("$server_addr")
done
run_load separate "${addrs[@]}"
rss="$(peak_rss_mb "${pids[@]}")"
kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
report separate "$rss"
