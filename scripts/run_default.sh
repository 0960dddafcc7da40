#!/usr/bin/env bash
# README's first command: build, fetch the default model, and stream one chat
# generation with `cohost run`. Arguments replace the default prompt flags.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
COHOST_BUILD_TARGETS=cohost "$root/scripts/build.sh"
"$root/scripts/fetch_model.sh"
if [ $# -eq 0 ]; then
  set -- --chat --prompt "Explain in two sentences why the sky is blue." --max-tokens 96
fi
exec "$root/build/tools/cohost" run --model "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
