#!/usr/bin/env bash
# README's second command (and CI's): build everything, check formatting, static
# analysis of changed files and the documented link graph (scripts/lint.sh), run
# every test, then the untrusted-input suites and fuzz corpora again under
# AddressSanitizer and the concurrency suites under ThreadSanitizer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${COHOST_BUILD_DIR:-$root/build}"  # build.sh and lint.sh read it too
"$root/scripts/build.sh"
"$root/scripts/lint.sh"
"$root/scripts/fetch_model.sh"
"$root/scripts/make_model_variants.sh"
COHOST_TEST_VENV="$HOME/.cache/cohost-test-venv" "$root/scripts/test_venv.sh" >/dev/null
(cd "$build" && ctest --output-on-failure --timeout 900 -j2)

# The sanitizer builds make only some targets: skip the placeholders ctest keeps
# for the others, the tests that run a program (cohost, cohost-client,
# kernels_bench, bench/gpu/check.sh), and the second runs of kernels_cpu_test
# and llamacpp_reference_test.
not_built='_NOT_BUILT$|^python_client_test$|^openai_test$|^client_link_test$|^kernels_bench_dry_run$|^gpu_check_dry_run$|^kernels_cpu_test_scalar_attention$|^kernels_cpu_test_bf16_pairs$|^llamacpp_reference_test_bf16_without_amx$'

# The fuzz targets' corpora (tests/fuzz) replay there too, all but those of
# the targets that need the server's libraries (requests, the HTTP port).
fuzz_targets="json_schema_fuzz string_pattern_fuzz gguf_fuzz safetensors_fuzz tokenizer_json_fuzz hf_config_fuzz chat_template_fuzz engine_fuzz output_split_fuzz"

echo "== AddressSanitizer: loaders, tokenizers, JSON schemas and grammars, batching, engine, fuzz corpora =="
COHOST_BUILD_DIR="$root/build-asan" \
  COHOST_BUILD_TARGETS="loader_test tokenizer_test sampling_test batching_test engine_test $fuzz_targets" \
  "$root/scripts/build.sh" -DCOHOST_CUDA=OFF -DCOHOST_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
(cd "$root/build-asan" && ctest --output-on-failure --timeout 900 -j2 \
  -E "$not_built|^openai_request_fuzz$|^grpc_request_fuzz$|^http_fuzz$")

echo "== ThreadSanitizer: engine (run loop fed from several threads), router (admission), device executor, model lifecycle (loader thread), HTTP front door (event loop and engine threads) =="
COHOST_BUILD_DIR="$root/build-tsan" COHOST_BUILD_TARGETS="engine_test router_test executor_test lifecycle_test http_front_door_test" \
  "$root/scripts/build.sh" -DCOHOST_CUDA=OFF -DCOHOST_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
# OpenBLAS synchronizes its worker threads with spin-waits TSan cannot see;
# keep BLAS single-threaded there so reports are about cohost's own threads.
(cd "$root/build-tsan" && OPENBLAS_NUM_THREADS=1 ctest --output-on-failure --timeout 900 -j2 -E "$not_built|_fuzz$")
