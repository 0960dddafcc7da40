#!/usr/bin/env bash
# README's second command (and CI's): build everything, run every test, then run
# the untrusted-input suites (loaders, tokenizers) again under AddressSanitizer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh"
"$root/scripts/fetch_model.sh"
(cd "$root/build" && ctest --output-on-failure --timeout 900 -j2)

echo "== AddressSanitizer: loader and tokenizer suites =="
COHOST_BUILD_DIR="$root/build-asan" COHOST_BUILD_TARGETS="loader_test tokenizer_test" \
  "$root/scripts/build.sh" -DCOHOST_CUDA=OFF -DCOHOST_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
# Only these two targets are built there, so ctest finds only their tests.
(cd "$root/build-asan" && ctest --output-on-failure --timeout 900 -j2)
