#!/usr/bin/env bash
# Fuzzes one of tests/fuzz's targets with libFuzzer (clang; AddressSanitizer
# and UBSan) for SECONDS (default 60), in build-fuzz/ ($COHOST_FUZZ_BUILD_DIR).
#   scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]
#   scripts/fuzz.sh --list
# Inputs that reach new code go to build-fuzz/corpus/TARGET (it starts from the
# committed tests/fuzz/corpus/TARGET); a failing input is written to
# build-fuzz/crashes/. Once fixed, commit it to tests/fuzz/corpus/TARGET, where
# the test command replays it (`ctest -R TARGET`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${COHOST_FUZZ_BUILD_DIR:-$root/build-fuzz}"
targets=(json_schema_fuzz string_pattern_fuzz openai_request_fuzz grpc_request_fuzz gguf_fuzz
         safetensors_fuzz tokenizer_json_fuzz hf_config_fuzz chat_template_fuzz engine_fuzz
         output_split_fuzz http_fuzz)
if [ "${1:-}" = "--list" ] || [ $# -lt 1 ]; then
  printf '%s\n' "${targets[@]}"
  [ $# -ge 1 ] && exit 0
  echo "usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]" >&2
  exit 2
fi
target="$1"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
if [[ ! " ${targets[*]} " =~ " $target " ]]; then
  echo "fuzz: no target '$target' (scripts/fuzz.sh --list)" >&2
  exit 2
fi

"$root/scripts/install_deps.sh"
# libFuzzer and the sanitizers' runtimes come with clang's compiler-rt.
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-dev
fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCOHOST_CUDA=OFF -DCOHOST_FUZZ=ON >/dev/null
ninja -C "$build" "$target"
if [[ "$target" == *request_fuzz ]]; then
  "$root/scripts/fetch_model.sh" >/dev/null  # their tokenizer is the default model's
fi
mkdir -p "$build/corpus/$target" "$build/crashes"
dict=()
[ -f "$root/tests/fuzz/${target%_fuzz}.dict" ] && dict=(-dict="$root/tests/fuzz/${target%_fuzz}.dict")
more=()  # tests/fuzz/CMakeLists.txt's MORE_CORPUS
[ "$target" = chat_template_fuzz ] && more=("$root/tests/data/chat_templates")
exec "$build/tests/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
  -artifact_prefix="$build/crashes/$target-" "${dict[@]}" "$@" \
  "$build/corpus/$target" "$root/tests/fuzz/corpus/$target" "${more[@]}"
