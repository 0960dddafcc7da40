#!/usr/bin/env bash
# Prepares .gpu-carry/ for bench/gpu/check.sh: the CUDA test and benchmark
# binaries, built here for sm_90a / sm_80 with Abseil, GoogleTest and OpenBLAS
# linked statically (COHOST_STATIC_DEPS), so that on a bare GPU machine they
# need only libc, libstdc++ and the CUDA runtime (cuBLAS is opened with dlopen
# from the machine's toolkit). The device tool sends only the working tree, so
# name .gpu-carry in its `carry` list; check.sh uses it only when it cannot
# configure a build there (the machine has CMake and CUDA, not Abseil).
#   bench/gpu/prepare_carry.sh [BUILD_DIR]   (default build-gpu-carry, Release)
# Fails if a binary needs any other shared library, or if the carry passes
# 20 MB (the binaries travel xz-compressed; check.sh unpacks them).
# `cohost` itself does not travel: its end-to-end check needs the default model,
# which cannot (98 MB); cuda_model_test runs the decoder on generated weights.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build-gpu-carry}"
carry="$root/.gpu-carry"
cd "$root"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOHOST_CUDA=ON \
  -DCOHOST_STATIC_DEPS=ON >/dev/null
targets=(kernels_backend_ops_test cuda_model_test kernels_bench)
ninja -C "$build" -j"${COHOST_JOBS:-2}" "${targets[@]}"
rm -rf "$carry"
mkdir -p "$carry/bin"
# What a bare machine has: the C and C++ runtimes, and CUDA's own.
allowed='^(linux-vdso|libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libgcc_s|libstdc\+\+|libcudart)\.so'
for f in "$build/tests/kernels_backend_ops_test" "$build/tests/cuda_model_test" \
  "$build/bench/kernels_bench"; do
  extra="$(ldd "$f" | awk '{print $1}' | xargs -n1 basename | grep -Ev "$allowed" || true)"
  if [ -n "$extra" ]; then
    echo "prepare_carry: $(basename "$f") still needs: $extra" >&2
    exit 1
  fi
  # Stripped and xz-compressed: statically linked OpenBLAS is most of each
  # binary (28 MB, 2 MB compressed); check.sh unpacks them with python3's lzma.
  strip --strip-debug -o "$carry/bin/$(basename "$f")" "$f"
  xz -T0 -6 "$carry/bin/$(basename "$f")"
done
git rev-parse --short HEAD >"$carry/COMMIT"
"$root/bench/gpu/source_hash.sh" >"$carry/SOURCE_HASH"
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu-carry/' "$exclude" 2>/dev/null || echo '/.gpu-carry/' >>"$exclude"
kb="$(du -sk "$carry" | cut -f1)"
echo "prepare_carry: $((kb / 1024)) MB in $carry: $(ls "$carry/bin" | tr '\n' ' ')"
if [ "$kb" -gt $((20 * 1024)) ]; then
  echo "prepare_carry: over 20 MB" >&2
  exit 1
fi
echo "prepare_carry: ready; call the device tool with carry [\".gpu-carry\"] and command bench/gpu/check.sh"
