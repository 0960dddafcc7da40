#!/usr/bin/env bash
# README's first command: build, fetch the default model, start `cohost serve`
# on it (gRPC on 50051, the OpenAI HTTP API on 8000), stream one sample chat
# generation through the gRPC API with
# `cohost generate`, then keep serving in the foreground (Ctrl-C stops it and the
# server drains). COHOST_SAMPLE_ONLY=1 stops the server after the sample.
# Arguments replace the sample's prompt flags (e.g. --prompt "Once upon a time").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
COHOST_BUILD_TARGETS=cohost "$root/scripts/build.sh"
"$root/scripts/fetch_model.sh"

cohost="${COHOST_BUILD_DIR:-$root/build}/tools/cohost"
port="${COHOST_PORT:-50051}"
metrics_port="${COHOST_METRICS_PORT:-9090}"
http_port="${COHOST_HTTP_PORT:-8000}"
log="$(mktemp)"
# In its own session, so that Ctrl-C reaches this script alone, which passes
# it on once: a server sent two signals (the terminal's, then the EXIT trap's)
# cancelled its requests instead of draining them. A second Ctrl-C is passed
# on too: the server then cancels what is left.
setsid "$cohost" serve --model "smollm2=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --host 127.0.0.1 --port "$port" --metrics-port "$metrics_port" --http-port "$http_port" 2> >(tee "$log" >&2) &
server=$!
stopping=0
trap 'stopping=1; kill -INT $server 2>/dev/null' INT
trap '[ $stopping = 1 ] || kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT

for _ in $(seq 1 600); do
  grep -q "listening on" "$log" 2>/dev/null && break
  kill -0 $server 2>/dev/null || { echo "run_default: the server exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "listening on" "$log" 2>/dev/null || {
  echo "run_default: the server did not start listening within 60 s (its log is above)" >&2
  exit 1
}

if [ $# -eq 0 ]; then
  set -- --chat --prompt "Explain in two sentences why the sky is blue." --max-tokens 96
fi
"$cohost" generate --server "127.0.0.1:$port" --model smollm2 "$@"

if [ "${COHOST_SAMPLE_ONLY:-0}" = 1 ]; then exit 0; fi
echo "run_default: serving smollm2 on 127.0.0.1:$port (gRPC), http://127.0.0.1:$http_port/v1 (OpenAI API; metrics: http://127.0.0.1:$metrics_port/metrics); Ctrl-C to stop" >&2
wait $server
