#!/usr/bin/env bash
# Makes the multi-model tests' second and third models from the default one
# (scripts/fetch_model.sh), models/SmolLM2-135M-Instruct.{F16,Q8_0}.gguf, and
# the K-quant and bf16 models the fast paths are checked on against llama.cpp,
# models/SmolLM2-135M-Instruct.{Q4_K_M,Q5_K_M,BF16}.gguf, written by the gguf
# package (scripts/make_model_variant.py), and the BF16 one as a Hugging Face
# checkpoint, models/SmolLM2-135M-Instruct.BF16-hf/ (scripts/make_hf_variant.py), and the Q8_0
# one as a Qwen3-architecture file, models/SmolLM2-135M-Instruct.Qwen3-Q8_0.gguf
# (scripts/make_qwen3_variant.py), for the Qwen3 path's check, and that one as
# a Qwen3-MoE file, models/SmolLM2-135M-Instruct.Qwen3MoE-Q8_0.gguf, and the
# Q8_0 one as a Mixtral (a Llama file with experts),
# models/SmolLM2-135M-Instruct.Mixtral-Q8_0.gguf (scripts/make_moe_variant.py),
# for the experts', and the first layers of those two as Hugging Face
# checkpoints, models/SmolLM2-135M-Instruct.{Qwen3MoE,Mixtral}-hf/
# (scripts/make_hf_moe_variant.py), for the check against transformers. The package goes
# into a virtual environment outside the checkout ($COHOST_VENV, by default
# ~/.cache/cohost-venv). Idempotent: files newer than the default model are kept.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/models"  # where the tests look
src="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
venv="${COHOST_VENV:-$HOME/.cache/cohost-venv}"

[ -f "$src" ] || "$root/scripts/fetch_model.sh"

# True where FILE exists and is newer than every DEP: a variant made from
# them is current.
fresh() {
  local file="$1" dep
  shift
  [ -f "$file" ] || return 1
  for dep in "$@"; do [ "$file" -nt "$dep" ] || return 1; done
}
scripts="$root/scripts"

missing=()
types=(F16 Q8_0 Q4_K_M Q5_K_M BF16)
for type in "${types[@]}"; do
  out="$dir/SmolLM2-135M-Instruct.$type.gguf"
  fresh "$out" "$src" "$scripts/make_model_variant.py" || missing+=("$type")
done
# llama.cpp's reference numbers (tests/data/llamacpp_reference.json) were
# computed on the K-quant files this script writes; say so if these differ
# (another numpy may round a scale differently: the test then compares
# against a slightly different file, within its tolerance).
check_reference_files() {
  local ref="$root/tests/data/llamacpp_reference.json" name want got
  [ -f "$ref" ] || return 0
  while read -r name want; do
    [ -f "$dir/$name" ] || continue
    got="$(sha256sum "$dir/$name" | cut -d' ' -f1)"
    [ "$got" = "$want" ] ||
      echo "make_model_variants: WARNING: $name differs from the file llama.cpp's reference numbers were computed on (sha256 $got, expected $want)"
  done < <(python3 -c 'import json,sys
for m in json.load(open(sys.argv[1]))["models"]: print(m["file"], m["sha256"])' "$ref")
  # transformers' numbers (tests/data/forward_reference_{qwen3moe,mixtral}.json)
  # on the checkpoints' weights.
  for which in qwen3moe mixtral; do
    ref="$root/tests/data/forward_reference_$which.json"
    [ -f "$ref" ] || continue
    read -r name want < <(python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); print(r["checkpoint"], r["safetensors_sha256"])' "$ref")
    [ -f "$dir/$name/model.safetensors" ] || continue
    got="$(sha256sum "$dir/$name/model.safetensors" | cut -d' ' -f1)"
    [ "$got" = "$want" ] ||
      echo "make_model_variants: WARNING: $name/model.safetensors differs from the checkpoint transformers' reference numbers were computed on (sha256 $got, expected $want)"
  done
}

# The BF16 variant as a Hugging Face checkpoint directory (make_hf_variant.py).
hf="$dir/SmolLM2-135M-Instruct.BF16-hf"
hf_current() { fresh "$hf/config.json" "$dir/SmolLM2-135M-Instruct.BF16.gguf" "$scripts/make_hf_variant.py"; }
# The Q8_0 variant as a Qwen3 file (make_qwen3_variant.py).
qwen3="$dir/SmolLM2-135M-Instruct.Qwen3-Q8_0.gguf"
qwen3_current() {
  fresh "$qwen3" "$dir/SmolLM2-135M-Instruct.Q8_0.gguf" "$scripts/make_qwen3_variant.py" \
    "$scripts/make_model_variant.py"
}
# The Qwen3 variant as a Qwen3-MoE file (make_moe_variant.py).
qwen3moe="$dir/SmolLM2-135M-Instruct.Qwen3MoE-Q8_0.gguf"
qwen3moe_current() { fresh "$qwen3moe" "$qwen3" "$scripts/make_moe_variant.py"; }
# The Q8_0 variant as a Mixtral (make_moe_variant.py).
mixtral="$dir/SmolLM2-135M-Instruct.Mixtral-Q8_0.gguf"
mixtral_current() {
  fresh "$mixtral" "$dir/SmolLM2-135M-Instruct.Q8_0.gguf" "$scripts/make_moe_variant.py"
}
# The Qwen3-MoE file's first layers as a Hugging Face checkpoint (make_hf_moe_variant.py).
hf_moe="$dir/SmolLM2-135M-Instruct.Qwen3MoE-hf"
hf_moe_current() {
  fresh "$hf_moe/config.json" "$qwen3moe" "$scripts/make_hf_moe_variant.py" "$scripts/make_hf_variant.py"
}
# The Mixtral file's first layers as a Hugging Face checkpoint (make_hf_moe_variant.py).
hf_mixtral="$dir/SmolLM2-135M-Instruct.Mixtral-hf"
hf_mixtral_current() {
  fresh "$hf_mixtral/config.json" "$mixtral" "$scripts/make_hf_moe_variant.py" \
    "$scripts/make_hf_variant.py"
}

if [ ${#missing[@]} -eq 0 ] && hf_current && qwen3_current && qwen3moe_current &&
  mixtral_current && hf_moe_current && hf_mixtral_current; then
  echo "make_model_variants: present"
  check_reference_files
  exit 0
fi

if ! "$venv/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
  echo "make_model_variants: installing gguf and numpy into $venv"
  if "$venv/bin/python" -c '' 2>/dev/null; then
    python3 -m venv "$venv"
  else
    # Its interpreter is gone (a Python upgraded or removed): made afresh.
    # Only then: $COHOST_VENV may be a venv of the user's own.
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check gguf==0.19.0 numpy
fi
# (The expansion stays empty where nothing is missing, under set -u on any bash.)
for type in ${missing[@]+"${missing[@]}"}; do
  out="$dir/SmolLM2-135M-Instruct.$type.gguf"
  echo "make_model_variants: writing $out"
  "$venv/bin/python" "$root/scripts/make_model_variant.py" "$src" "$out.tmp" "$type"
  mv "$out.tmp" "$out"
done
if ! hf_current; then
  echo "make_model_variants: writing $hf"
  rm -rf "$hf.tmp"
  "$venv/bin/python" "$root/scripts/make_hf_variant.py" "$dir/SmolLM2-135M-Instruct.BF16.gguf" "$hf.tmp"
  rm -rf "$hf"
  mv "$hf.tmp" "$hf"
fi
if ! qwen3_current; then
  echo "make_model_variants: writing $qwen3"
  "$venv/bin/python" "$root/scripts/make_qwen3_variant.py" "$dir/SmolLM2-135M-Instruct.Q8_0.gguf" \
    "$qwen3.tmp"
  mv "$qwen3.tmp" "$qwen3"
fi
if ! qwen3moe_current; then
  echo "make_model_variants: writing $qwen3moe"
  "$venv/bin/python" "$root/scripts/make_moe_variant.py" "$qwen3" "$qwen3moe.tmp"
  mv "$qwen3moe.tmp" "$qwen3moe"
fi
if ! mixtral_current; then
  echo "make_model_variants: writing $mixtral"
  "$venv/bin/python" "$root/scripts/make_moe_variant.py" "$dir/SmolLM2-135M-Instruct.Q8_0.gguf" \
    "$mixtral.tmp"
  mv "$mixtral.tmp" "$mixtral"
fi
if ! hf_moe_current; then
  echo "make_model_variants: writing $hf_moe"
  rm -rf "$hf_moe.tmp"
  "$venv/bin/python" "$root/scripts/make_hf_moe_variant.py" "$qwen3moe" "$hf_moe.tmp"
  rm -rf "$hf_moe"
  mv "$hf_moe.tmp" "$hf_moe"
fi
if ! hf_mixtral_current; then
  echo "make_model_variants: writing $hf_mixtral"
  rm -rf "$hf_mixtral.tmp"
  "$venv/bin/python" "$root/scripts/make_hf_moe_variant.py" "$mixtral" "$hf_mixtral.tmp"
  rm -rf "$hf_mixtral"
  mv "$hf_mixtral.tmp" "$hf_mixtral"
fi
check_reference_files
