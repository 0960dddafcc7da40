#!/usr/bin/env bash
# Makes the multi-model tests' second and third models from the default one
# (scripts/fetch_model.sh): models/SmolLM2-135M-Instruct.{F16,Q8_0}.gguf,
# written by the gguf package (scripts/make_model_variant.py). The package goes
# into a virtual environment outside the checkout ($COHOST_VENV, by default
# ~/.cache/cohost-venv). Idempotent: files newer than the default model are kept.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${COHOST_MODELS_DIR:-$root/models}"
src="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
venv="${COHOST_VENV:-$HOME/.cache/cohost-venv}"

[ -f "$src" ] || "$root/scripts/fetch_model.sh"

missing=()
for type in F16 Q8_0; do
  out="$dir/SmolLM2-135M-Instruct.$type.gguf"
  [ -f "$out" ] && [ "$out" -nt "$src" ] || missing+=("$type")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "make_model_variants: present"
  exit 0
fi

if ! "$venv/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
  echo "make_model_variants: installing gguf and numpy into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check gguf==0.19.0 numpy
fi
for type in "${missing[@]}"; do
  out="$dir/SmolLM2-135M-Instruct.$type.gguf"
  echo "make_model_variants: writing $out"
  "$venv/bin/python" "$root/scripts/make_model_variant.py" "$src" "$out.tmp" "$type"
  mv "$out.tmp" "$out"
done
