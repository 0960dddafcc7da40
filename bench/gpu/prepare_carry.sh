#!/usr/bin/env bash
# Prepares .gpu-carry/ for bench/gpu/check.sh: prebuilt CUDA binaries plus the
# shared libraries they need that a GPU machine's image may lack (absl,
# OpenBLAS, ...; never the CUDA libraries, libc or libstdc++, which it has).
# The device tool sends only the working tree, so name .gpu-carry in its
# `carry` list; check.sh uses it only when it cannot configure a build there.
#   bench/gpu/prepare_carry.sh [BUILD_DIR]   (default build-gpu-carry, Release)
# Keep the result under the tool's 64 MiB: OpenBLAS alone is about 36 MB.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build-gpu-carry}"
carry="$root/.gpu-carry"
cd "$root"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOHOST_CUDA=ON >/dev/null
fi
targets=(kernels_backend_ops_test)
for t in cohost kernels_bench cuda_model_test; do
  ninja -C "$build" -t targets all | grep -q "^$t:" && targets+=("$t")
done
ninja -C "$build" -j"${COHOST_JOBS:-2}" "${targets[@]}" || {
  echo "prepare_carry: only the op test could be built" >&2
  ninja -C "$build" kernels_backend_ops_test
}
rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/lib"
for f in "$build/tests/kernels_backend_ops_test" "$build/tests/cuda_model_test" "$build/tools/cohost" \
  "$build/bench/kernels_bench"; do
  [ -x "$f" ] || continue
  cp "$f" "$carry/bin/"
  strip --strip-debug "$carry/bin/$(basename "$f")"
  ldd "$f" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++.so*) ;;
      libcuda*|libcublas*|libcudart*|libnv*) ;;  # from the machine's own CUDA
      *) cp -L "$lib" "$carry/lib/" ;;
    esac
  done
done
git rev-parse --short HEAD >"$carry/COMMIT"
grep -qx '/.gpu-carry/' "$root/.git/info/exclude" 2>/dev/null || echo '/.gpu-carry/' >>"$root/.git/info/exclude"
du -sh "$carry"
echo "prepare_carry: ready; call the device tool with carry [\".gpu-carry\"] and command bench/gpu/check.sh"
